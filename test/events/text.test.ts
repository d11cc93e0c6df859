// eventText: the one line a chat tool (a Slack or Mattermost incoming
// webhook's text) shows as it is: plain, escaped as Slack asks, bounded.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { EventRecord } from '../../src/domain.ts'
import { MAX_TEXT, chatLine, eventText } from '../../src/events/text.ts'

const A = `sha256:ab12cd34${'0'.repeat(56)}`
const B = `sha256:cd34ef56${'1'.repeat(56)}`

function event(overrides: Partial<EventRecord> = {}): Omit<EventRecord, 'id'> {
  return {
    at: '2026-03-01T00:00:00.000Z',
    type: 'STATIC_POD_CHANGED',
    node: 'cp-1',
    namespace: 'kube-system',
    name: 'kube-apiserver',
    message: 'kube-system/kube-apiserver changed on the node (kube-apiserver.yaml, sha256:ab12cd34… → sha256:cd34ef56…)',
    fromHash: A,
    toHash: B,
    actor: null,
    ...overrides,
  }
}

describe('eventText', () => {
  it('a manifest changed on the node, or through the service by someone', () => {
    assert.equal(eventText(event()), '[cp-1] kube-system/kube-apiserver changed on the node (sha256:ab12cd34… → sha256:cd34ef56…)')
    assert.equal(eventText(event({ actor: 'alice' })), '[cp-1] kube-system/kube-apiserver changed by alice (sha256:ab12cd34… → sha256:cd34ef56…)')
  })

  it('added and removed', () => {
    assert.equal(eventText(event({ type: 'STATIC_POD_ADDED', fromHash: null, actor: 'alice' })), '[cp-1] kube-system/kube-apiserver added by alice (sha256:cd34ef56…)')
    assert.equal(eventText(event({ type: 'STATIC_POD_REMOVED', toHash: null })), '[cp-1] kube-system/kube-apiserver removed on the node (was sha256:ab12cd34…)')
  })

  it('a rename (same bytes) shows the one hash', () => {
    assert.equal(eventText(event({ toHash: A })), '[cp-1] kube-system/kube-apiserver changed on the node (sha256:ab12cd34…)')
  })

  it('a hash of another form is shown cut, not dropped', () => {
    assert.equal(eventText(event({ type: 'STATIC_POD_ADDED', fromHash: null, toHash: 'md5:abc' })), '[cp-1] kube-system/kube-apiserver added on the node (md5:abc)')
  })

  it('the other types: the node and the message, and who when someone did it', () => {
    assert.equal(
      eventText(event({ type: 'POD_NOT_READY', message: 'kube-system/etcd is not ready: sandbox NOTREADY', fromHash: null, toHash: null })),
      '[cp-1] kube-system/etcd is not ready: sandbox NOTREADY',
    )
    assert.equal(eventText(event({ type: 'NODE_UNREACHABLE', namespace: null, name: null, message: 'cp-1 is unreachable', fromHash: null, toHash: null })), '[cp-1] cp-1 is unreachable')
    assert.equal(
      eventText({ ...event({ type: 'ROLLOUT_STARTED', namespace: null, name: null, message: 'rollout r-1 of kube-apiserver to 3 nodes', actor: 'alice' }), id: '42' }),
      '[cp-1] rollout r-1 of kube-apiserver to 3 nodes (by alice)',
    )
  })

  it('escapes &, < and > as Slack asks: no link, mention or date can be made', () => {
    const line = eventText(event({ type: 'FINDING_ADDED', message: 'STRAY_FILE in <!channel> & <@U123> <https://evil.example|click>.yaml: x > y', fromHash: null, toHash: null }))
    assert.equal(line, '[cp-1] STRAY_FILE in &lt;!channel&gt; &amp; &lt;@U123&gt; &lt;https://evil.example|click&gt;.yaml: x &gt; y')
    assert.doesNotMatch(line, /[<>]|&(?!amp;|lt;|gt;)/)
  })

  it('an already escaped-looking name is escaped again (shown as written)', () => {
    assert.equal(chatLine('&amp; &lt;'), '&amp;amp; &amp;lt;')
  })

  it('one line: newlines and control characters are spaces, bidi controls removed', () => {
    assert.equal(chatLine('a\nb\r\nc\td\u0007e\u2028f'), 'a b c d e f')
    assert.equal(chatLine('evil\u202eelif.yaml'), 'evilelif.yaml')
    assert.equal(eventText(event({ actor: 'alice\n*bold*' })), '[cp-1] kube-system/kube-apiserver changed by alice *bold* (sha256:ab12cd34… → sha256:cd34ef56…)')
  })

  it('breaks channel-wide mentions and Markdown links with a zero-width space', () => {
    assert.equal(chatLine('@channel @HERE @all @everyone @alice'), '@\u200bchannel @\u200bHERE @\u200ball @\u200beveryone @alice')
    assert.equal(chatLine('[click](https://evil.example)'), '[click]\u200b(https://evil.example)')
  })

  it('at most MAX_TEXT characters, cut with an ellipsis, never inside an escape', () => {
    assert.equal(chatLine('x'.repeat(MAX_TEXT)), 'x'.repeat(MAX_TEXT))
    const long = chatLine('x'.repeat(MAX_TEXT + 1))
    assert.equal(long.length, MAX_TEXT)
    assert.ok(long.endsWith('x…'))
    for (const text of ['&'.repeat(1000), `x${'<'.repeat(1000)}`, `xx${'>'.repeat(1000)}`, '&'.repeat(100_000)]) {
      const line = chatLine(text)
      assert.ok(line.length <= MAX_TEXT, String(line.length))
      assert.match(line, /^(&amp;|&lt;|&gt;|x)+…$/)
    }
    const huge = eventText(event({ type: 'FINDING_ADDED', message: 'm'.repeat(100_000), node: 'n'.repeat(1000) }))
    assert.ok(huge.length <= MAX_TEXT && huge.endsWith('…'))
  })

  it('never splits a surrogate pair', () => {
    for (const lead of ['', 'x']) {
      const line = chatLine(lead + '😀'.repeat(MAX_TEXT))
      assert.ok(line.endsWith('😀…'))
      assert.ok(line.length <= MAX_TEXT)
    }
  })
})
