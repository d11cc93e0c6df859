// Who may open a subscription, and the bounds on it: the token in the
// connection_init payload or on the upgrade request, refused without one;
// connections, subscriptions per connection and messages per minute bounded;
// subscription documents validated like queries.

import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { describe, it, type TestContext } from 'node:test'
import WebSocket from 'ws'
import { build } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT } from '../http/tokens.ts'
import { describe as describeError, subscribe, wsUrl } from '../support/subscriber.ts'

const EVENTS = 'subscription { events { id type } }'

async function listening(t: TestContext, env: Record<string, string> = {}): Promise<{ port: number; app: Awaited<ReturnType<typeof build>>['app'] }> {
  const ta = await build(t, { env: { AUTH_TOKENS: TOKENS_DOCUMENT, OBSERVE_INTERVAL_SECONDS: '0', ...env }, appOptions: { eventPollMs: 50 } })
  await ta.app.listen({ host: '127.0.0.1', port: 0 })
  return { port: (ta.app.server.address() as AddressInfo).port, app: ta.app }
}

/** Time for subscriptions to start (or be refused) when nothing is expected to arrive. */
const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms))

/** A raw graphql-transport-ws socket: the protocol's messages by hand. */
async function rawSocket(port: number, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; messages: any[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(wsUrl(port), 'graphql-transport-ws', { headers })
  const messages: any[] = []
  ws.on('message', (m) => messages.push(JSON.parse(String(m))))
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return { ws, messages, closed }
}

/** The HTTP status an upgrade was refused with; the server closes that connection itself. */
function refusedWith(ws: WebSocket): Promise<number> {
  return new Promise((resolve) =>
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0)
      req.destroy()
    }),
  )
}

async function until(what: string, fn: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('subscriptions: authentication', () => {
  it('the token in the connection_init payload or on the upgrade request lets a subscription run; none, or a wrong one, is refused', async (t) => {
    const { port } = await listening(t)
    const inPayload = subscribe(port, EVENTS, { init: { Authorization: `Bearer ${TOKENS.viewer}` } })
    const underHeaders = subscribe(port, EVENTS, { init: { headers: { authorization: `Bearer ${TOKENS.viewer}` } } })
    const onUpgrade = subscribe(port, EVENTS, { headers: { authorization: `Bearer ${TOKENS.viewer}` } })
    const none = subscribe(port, EVENTS)
    const wrong = subscribe(port, EVENTS, { init: { Authorization: 'Bearer not-a-token' } })
    t.after(() => Promise.all([inPayload, underHeaders, onUpgrade, none, wrong].map((s) => s.close())))
    await Promise.all([none.ended(), wrong.ended()])
    await settle()
    for (const ok of [inPayload, underHeaders, onUpgrade]) assert.equal(ok.error, undefined, describeError(ok.error))
    for (const refused of [none, wrong]) {
      // graphql-transport-ws: Forbidden is close code 4403.
      assert.equal((refused.error as { code?: number }).code, 4403, describeError(refused.error))
      assert.equal(refused.values.length, 0)
    }
  })

  it('a wrong token on the upgrade request is 401 before any socket', async (t) => {
    const { port } = await listening(t)
    const ws = new WebSocket(wsUrl(port), 'graphql-transport-ws', { headers: { authorization: 'Bearer wrong' } })
    const status = await refusedWith(ws)
    assert.equal(status, 401)
  })

  it('a plain GET /graphql that claims an upgrade without a token runs nothing', async (t) => {
    const { port, app } = await listening(t)
    const res = await app.inject({ method: 'GET', url: '/graphql?query=%7Bnodes%7Bname%7D%7D', headers: { upgrade: 'websocket' } })
    assert.notEqual(res.statusCode, 200)
    assert.ok(!res.body.includes('"nodes"'), res.body)
    const http = await fetch(`http://127.0.0.1:${port}/graphql?query=%7Bnodes%7Bname%7D%7D`, { headers: { upgrade: 'websocket' } }).catch((e: unknown) => e)
    if (http instanceof Response) assert.ok(!(await http.text()).includes('"nodes"'), 'no data over plain HTTP either')
  })
})

describe('subscriptions: bounds', () => {
  it('SUBSCRIPTION_MAX_CONNECTIONS: the next upgrade is 503 BUSY', async (t) => {
    const { port } = await listening(t, { SUBSCRIPTION_MAX_CONNECTIONS: '2' })
    const a = await rawSocket(port, { authorization: `Bearer ${TOKENS.viewer}` })
    const b = await rawSocket(port, { authorization: `Bearer ${TOKENS.viewer}` })
    t.after(() => {
      a.ws.close()
      b.ws.close()
    })
    const ws = new WebSocket(wsUrl(port), 'graphql-transport-ws', { headers: { authorization: `Bearer ${TOKENS.viewer}` } })
    const status = await refusedWith(ws)
    assert.equal(status, 503)
    a.ws.close()
    await a.closed
    await until('a free slot', () => true)
    const c = await rawSocket(port, { authorization: `Bearer ${TOKENS.viewer}` })
    c.ws.close()
  })

  it('SUBSCRIPTION_MAX_PER_CONNECTION: the next subscription on that connection is BUSY', async (t) => {
    const { port } = await listening(t, { SUBSCRIPTION_MAX_PER_CONNECTION: '2' })
    const s = await rawSocket(port)
    t.after(() => s.ws.close())
    s.ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${TOKENS.viewer}` } }))
    await until('connection_ack', () => s.messages.some((m) => m.type === 'connection_ack'))
    for (const id of ['1', '2', '3']) s.ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query: EVENTS } }))
    await until('an error for the third', () => s.messages.some((m) => m.type === 'error'))
    const errors = s.messages.filter((m) => m.type === 'error')
    assert.deepEqual(errors.map((m) => m.id), ['3'])
    assert.equal(errors[0].payload[0].extensions.code, 'BUSY')
  })

  it('SUBSCRIPTION_MESSAGES_PER_MINUTE: a client past it is disconnected (1008)', async (t) => {
    const { port } = await listening(t, { SUBSCRIPTION_MESSAGES_PER_MINUTE: '5' })
    const s = await rawSocket(port)
    t.after(() => s.ws.close())
    s.ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${TOKENS.viewer}` } }))
    for (let i = 0; i < 10; i++) s.ws.send(JSON.stringify({ type: 'ping' }))
    const { code } = await s.closed
    assert.equal(code, 1008)
  })

  it('subscription documents are validated like queries: unknown fields and the query limits', async (t) => {
    const { port } = await listening(t, { GRAPHQL_MAX_DEPTH: '3' })
    const init = { Authorization: `Bearer ${TOKENS.viewer}` }
    const unknown = subscribe(port, 'subscription { events { id nope } }', { init })
    const deep = subscribe(port, 'subscription { rollout(id: "x") { nodes { error { code } } } }', { init })
    t.after(() => Promise.all([unknown.close(), deep.close()]))
    await Promise.all([unknown.ended(), deep.ended()])
    for (const refused of [unknown, deep]) {
      const errors = refused.error as Array<{ message: string; extensions?: { code?: string } }>
      assert.ok(Array.isArray(errors), describeError(refused.error))
      assert.equal(errors[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(errors))
    }
    assert.match((unknown.error as Array<{ message: string }>)[0]?.message ?? '', /nope/)
  })

  it('frames over 64 KiB close the connection', async (t) => {
    const { port } = await listening(t)
    const s = await rawSocket(port)
    s.ws.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(70 * 1024) } }))
    const { code } = await s.closed
    assert.equal(code, 1009)
  })
})
