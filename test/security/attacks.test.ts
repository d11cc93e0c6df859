// The findings of the "Close the door" review, replayed against a live server
// (its own process, started as `npm start` starts it, tokens configured) over
// real HTTP on 127.0.0.1. Each test is one finding and shows it fixed. The
// address-based limit test runs last: it leaves 127.0.0.1 locked out.

import assert from 'node:assert/strict'
import { stat } from 'node:fs/promises'
import Database from 'better-sqlite3'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { getIntrospectionQuery } from 'graphql'
import { podYaml } from '../helper.ts'
import { TOKENS, bearer } from '../http/tokens.ts'
import { startLiveServer, type LiveServer } from './live-server.ts'

const REQUEST_TIMEOUT_MS = 3000
/** docs/security-limits.md: the worst case under npm start's heap limit. */
const RSS_BOUND_BYTES = 1400 * 1024 * 1024

/**
 * What the store holds, in bytes: the database file after its write-ahead log
 * is checkpointed into it (the log itself is reused, and bounded by SQLite's
 * autocheckpoint, whatever is written).
 */
async function storeBytes(server: LiveServer): Promise<number> {
  const db = new Database(server.storeFile)
  try {
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.close()
  }
  return (await stat(server.storeFile)).size
}

describe('security findings, against a live server', () => {
  let server: LiveServer

  const gql = async (token: string | null, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? bearer(token) : {}), ...headers },
      body: JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, headers: res.headers, json: JSON.parse(text) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> }, bytes: text.length }
  }

  before(async () => {
    server = await startLiveServer({ REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), MANIFEST_BUDGET_WAIT_MS: '1000' })
  })

  after(async () => {
    await server?.stop()
  })

  it('introspection is counted: 1,000 aliased __schema are refused before they run, and /healthz answers meanwhile', async () => {
    const deep = '__schema { types { name fields { name args { name type { name kind ofType { name } } } } } }'
    const attack = `{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: ${deep}`).join(' ')} }`
    const attacks = Array.from({ length: 4 }, () => gql(TOKENS.viewer, { query: attack }))
    const health = await fetch(`${server.base}/healthz`)
    assert.equal(health.status, 200)
    for (const res of await Promise.all(attacks)) {
      assert.equal(res.status, 400)
      assert.equal(res.json.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX')
      assert.ok(res.bytes < 10_000, `the refusal is small (${res.bytes} bytes)`)
    }
    assert.ok(server.alive())
    // GraphiQL's own introspection still works.
    const ok = await gql(TOKENS.viewer, { query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }) })
    assert.equal(ok.status, 200)
    assert.ok(ok.json.data.__schema.types.length > 10)
  })

  it('aliases are capped even on cheap fields', async () => {
    const res = await gql(TOKENS.viewer, { query: `{ ${Array.from({ length: 101 }, (_, i) => `n${i}: __typename`).join(' ')} }` })
    assert.equal(res.status, 400)
    assert.match(res.json.errors?.[0]?.message ?? '', /101 aliases; at most 100/)
  })

  it('three concurrent 9.9 MB writes are all answered (2xx or 503 with Retry-After), the process lives and its RSS stays bounded', async () => {
    const filler = 'a'.repeat(9.9 * 1024 * 1024 - 400)
    const manifest = (i: number) => podYaml(`big-${i}`, 'nginx:1.27', `  annotations:\n    filler: "${filler}"\n`)
    let peak = await server.rss()
    const sampler = setInterval(() => void server.rss().then((r) => (peak = Math.max(peak, r)), () => undefined), 50)
    const answers = await Promise.all(
      [0, 1, 2].map((i) =>
        fetch(`${server.base}/api/v1/nodes/local/staticpods/default/big-${i}`, {
          method: 'PUT',
          headers: { ...bearer(TOKENS.operator), 'content-type': 'application/yaml' },
          body: manifest(i),
        }),
      ),
    )
    // A live read of the node that now holds them, twice (the second must not parse again).
    for (let i = 0; i < 2; i++) {
      const list = await fetch(`${server.base}/api/v1/nodes/local/staticpods?maxAgeSeconds=0`, { headers: bearer(TOKENS.viewer) })
      assert.equal(list.status, 200)
      await list.arrayBuffer()
    }
    clearInterval(sampler)
    assert.ok(server.alive(), 'the process ended')
    for (const res of answers) {
      await res.arrayBuffer()
      assert.ok(res.status === 201 || res.status === 200 || res.status === 503, `status ${res.status}`)
      if (res.status === 503) assert.ok(Number(res.headers.get('retry-after')) >= 1)
    }
    assert.ok(answers.some((r) => r.status === 201), 'at least one write went through')
    assert.ok(peak < RSS_BOUND_BYTES, `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`)
  })

  it('a manifest with 100,000 labels (dry run) is handled in linear time while /healthz answers', async () => {
    const labels = Array.from({ length: 100_000 }, (_, i) => `    l${i}: v`).join('\n')
    const manifest = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: many-labels\n  labels:\n${labels}\nspec:\n  containers:\n  - name: main\n    image: nginx:1.27\n`
    const started = performance.now()
    const big = fetch(`${server.base}/api/v1/nodes/local/staticpods/default/many-labels?dryRun=true`, {
      method: 'PUT',
      headers: { ...bearer(TOKENS.operator), 'content-type': 'application/yaml' },
      body: manifest,
    }).then(async (r) => ({ status: r.status, body: await r.text(), seconds: (performance.now() - started) / 1000 }))
    await sleep(50)
    const health = await fetch(`${server.base}/healthz`).then((r) => ({ status: r.status, seconds: (performance.now() - started) / 1000 }))
    const answer = await big
    assert.equal(health.status, 200)
    assert.ok(answer.status === 200 || answer.status === 400, `status ${answer.status}: ${answer.body.slice(0, 200)}`)
    // The quadratic check took ~150 s for this input; linear is a second or two. The bound leaves room for a loaded machine.
    assert.ok(answer.seconds < 30 && health.seconds < 30, `answered after ${answer.seconds.toFixed(1)} s, /healthz after ${health.seconds.toFixed(1)} s`)
  })

  it('50 denied aliased mutations with 1 MB names: 50 FORBIDDEN, the store grows by < 100 KB and the log by < 200 KB', async () => {
    const name = 'n'.repeat(1024 * 1024)
    const query = `mutation($n: String!) { ${Array.from({ length: 50 }, (_, i) => `r${i}: registerNode(input: {name: $n, host: "127.0.0.1"}) { userErrors { code } }`).join(' ')} }`
    const storeBefore = await storeBytes(server)
    const logBefore = server.output().length
    const res = await gql(TOKENS.viewer, { query, variables: { n: name } })
    assert.equal(res.status, 200)
    const codes = Object.values(res.json.data as Record<string, { userErrors: Array<{ code: string }> }>).map((p) => p.userErrors[0]?.code)
    assert.deepEqual(new Set(codes), new Set(['FORBIDDEN']))
    assert.equal(codes.length, 50)
    await sleep(200)
    const grown = (await storeBytes(server)) - storeBefore
    assert.ok(grown < 100 * 1024, `the store grew by ${grown} bytes`)
    const logged = server.output().length - logBefore
    assert.ok(logged < 200 * 1024, `the log grew by ${logged} bytes`)
    // The events are there, each naming a marked prefix of what was sent.
    const audit = await gql(TOKENS.viewer, { query: '{ auditEvents(limit: 50) { action result node } }' })
    const events = audit.json.data.auditEvents as Array<{ action: string; result: string; node: string }>
    assert.equal(events.filter((e) => e.action === 'registerNode' && e.result === 'FORBIDDEN').length, 50)
    for (const e of events) assert.ok(e.node.length < 100 && e.node.includes('invalid, 1048576 characters'), e.node)
  })

  it('/metrics stays small after queries with long operation names', async () => {
    const before = (await (await fetch(`${server.base}/metrics`)).text()).length
    // 2 MB names are over GRAPHQL_MAX_QUERY_BYTES now; names just under it run, and must not become labels either.
    const huge = await gql(TOKENS.viewer, { query: `query Q${'x'.repeat(2 * 1024 * 1024)} { cluster { nodeCount } }` })
    assert.equal(huge.status, 400)
    assert.equal(huge.json.errors?.[0]?.extensions?.code, 'QUERY_TOO_LARGE')
    for (let i = 0; i < 10; i++) {
      const name = `Q${i}${'x'.repeat(200 * 1024)}`
      const res = await gql(TOKENS.viewer, { query: `query ${name} { cluster { nodeCount } }` })
      assert.equal(res.status, 200)
    }
    const text = await (await fetch(`${server.base}/metrics`)).text()
    assert.ok(!text.includes('xxxxxxxxxx'), 'an operation name reached /metrics')
    assert.ok(text.length < before + 20_000, `/metrics grew from ${before} to ${text.length} bytes`)
  })

  it('a slow body is cut within REQUEST_TIMEOUT_MS', async () => {
    const started = performance.now()
    const socket = connect(Number(new URL(server.base).port), '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKENS.viewer}\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{`)
    let answer = ''
    socket.on('data', (d: Buffer) => (answer += d.toString('utf8')))
    // The server may reset the connection while a drip is in flight: that is the cut
    // this test waits for, not a fault of the test ('close' follows the 'error').
    let reset: Error | undefined
    socket.on('error', (error) => (reset = error))
    const drip = setInterval(() => socket.writable && socket.write(' '), 1000)
    const closed = await Promise.race([
      new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
      sleep(REQUEST_TIMEOUT_MS * 5).then(() => false),
    ])
    clearInterval(drip)
    socket.destroy()
    const seconds = (performance.now() - started) / 1000
    assert.ok(closed, `the connection was still open after ${seconds.toFixed(1)} s`)
    assert.ok(seconds >= REQUEST_TIMEOUT_MS / 1000 - 0.5, `cut after ${seconds.toFixed(1)} s: before the timeout?`)
    if (answer) assert.match(answer, /^HTTP\/1\.1 408/)
    if (reset) assert.equal((reset as NodeJS.ErrnoException).code, 'ECONNRESET', `the connection failed otherwise: ${reset.message}`)
  })

  it('a viewer PUT with If-Match: * is FORBIDDEN (not 412) and audited', async () => {
    const res = await fetch(`${server.base}/api/v1/nodes/local/staticpods/default/web`, {
      method: 'PUT',
      headers: { ...bearer(TOKENS.viewer), 'if-match': '*', 'content-type': 'application/yaml' },
      body: podYaml('web'),
    })
    assert.equal(res.status, 403)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'FORBIDDEN')
    const audit = await gql(TOKENS.viewer, { query: '{ auditEvents(limit: 5) { action result actor } }' })
    assert.deepEqual(audit.json.data.auditEvents[0], { action: 'putStaticPod', result: 'FORBIDDEN', actor: 'alice-viewer' })
    // And an operator's If-Match: * on a missing pod is 412, nothing written.
    const missing = await fetch(`${server.base}/api/v1/nodes/local/staticpods/default/web`, {
      method: 'PUT',
      headers: { ...bearer(TOKENS.operator), 'if-match': '*', 'content-type': 'application/yaml' },
      body: podYaml('web'),
    })
    assert.equal(missing.status, 412)
  })

  it('request log lines name method, route, status, client address, actor and request id, never the token', async () => {
    const before = server.output().length
    await fetch(`${server.base}/api/v1/nodes`, { headers: { ...bearer(TOKENS.viewer), 'x-request-id': 'trace-me-42' } })
    await sleep(200)
    const lines = server.output().slice(before).split('\n').filter((l) => l.includes('trace-me-42'))
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request completed')
    assert.ok(line, `no request line in: ${lines.join('\n')}`)
    assert.equal(line.method, 'GET')
    assert.equal(line.route, '/api/v1/nodes')
    assert.equal(line.status, 200)
    assert.equal(line.clientAddress, '127.0.0.1')
    assert.equal(line.actor, 'alice-viewer')
    assert.equal(line.reqId, 'trace-me-42')
    assert.ok(!server.output().includes(TOKENS.viewer), 'a token reached the log')
  })

  it('smaller findings: U+202E in fileName, maxAgeSeconds -1, a 2 MB label selector', async () => {
    const created = await gql(TOKENS.operator, {
      query: 'mutation($m: String!, $f: String) { createStaticPod(input: {node: "local", manifest: $m, fileName: $f}) { userErrors { code field message } } }',
      variables: { m: podYaml('rtl'), f: 'pod\u202Elmay.yaml' },
    })
    assert.deepEqual(created.json.data.createStaticPod.userErrors[0].field, ['fileName'])
    assert.equal(created.json.data.createStaticPod.userErrors[0].code, 'VALIDATION_FAILED')

    const negative = await gql(TOKENS.viewer, { query: '{ staticPods(maxAgeSeconds: -1) { name } }' })
    assert.equal(negative.json.errors?.[0]?.extensions?.code, 'VALIDATION_FAILED')
    assert.match(negative.json.errors?.[0]?.message ?? '', /maxAgeSeconds/)

    const selector = gql(TOKENS.viewer, { query: 'query($s: String) { nodes(labelSelector: $s) { name } }', variables: { s: `a${'='.repeat(2 * 1024 * 1024)}` } })
    const res = await selector
    assert.equal(res.json.errors?.[0]?.extensions?.code, 'VALIDATION_FAILED')
    assert.ok(res.bytes < 10_000, `the error echoes the selector: ${res.bytes} bytes`)
  })

  it('failed and missing tokens are limited per address before authentication: 401s turn into 429s, even for a right token', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 25; i++) {
      const res = await fetch(`${server.base}/api/v1/nodes`, { headers: i % 2 ? bearer(`guess-${i}`) : {} })
      statuses.push(res.status)
    }
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401))
    assert.deepEqual(statuses.slice(20), Array(5).fill(429))
    // Past the limit a right guess is not told apart from a wrong one.
    const right = await fetch(`${server.base}/%61pi/v1/nodes`, { headers: bearer(TOKENS.admin) })
    assert.equal(right.status, 429)
    assert.ok(Number(right.headers.get('retry-after')) >= 1)
    assert.equal(((await right.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED')
    // Public routes stay open.
    assert.equal((await fetch(`${server.base}/healthz`)).status, 200)
  })
})
