// The request limits that need a setting changed to be
// seen: rate limits counted per mutation field, the response size cap,
// fragment bombs, and /metrics behind a token.

import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { build, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from '../http/tokens.ts'
import { WindowCounter } from '../../src/http/rate-limits.ts'

async function withTokens(t: TestContext, env: Record<string, string>) {
  const built = await build(t, { env: { AUTH_TOKENS: TOKENS_DOCUMENT, ...env } })
  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const res = await built.app.inject({ method: 'POST', url: '/graphql', headers: bearer(token), payload: { query, variables } })
    return { status: res.statusCode, headers: res.headers, json: res.json() as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> } }
  }
  return { ...built, gqlAs: gql }
}

describe('limits', () => {
  it('the per-token limit counts every mutation field: 50 aliased mutations are 50, refused before any runs', async (t) => {
    const { app, gqlAs } = await withTokens(t, { RATE_LIMIT_PER_MINUTE: '40' })
    const fifty = `mutation { ${Array.from({ length: 50 }, (_, i) => `d${i}: deleteStaticPod(input: {node: "local", name: "web${i}"}) { deleted }`).join(' ')} }`
    const refused = await gqlAs(TOKENS.operator, fifty)
    assert.equal(refused.status, 429)
    assert.equal(refused.json.errors?.[0]?.extensions?.code, 'RATE_LIMITED')
    assert.ok(Number(refused.headers['retry-after']) >= 1)
    assert.equal((await app.services.store.listAudit({ limit: 100 })).length, 0, 'no mutation ran')
    // Another token has its own budget; five mutations cost five.
    const admin = (n: number) => `mutation { ${Array.from({ length: n }, (_, i) => `d${i}: deleteStaticPod(input: {node: "local", name: "x${i}"}) { deleted }`).join(' ')} }`
    for (let i = 0; i < 8; i++) assert.equal((await gqlAs(TOKENS.admin, admin(5))).status, 200, `request ${i}`)
    const over = await gqlAs(TOKENS.admin, admin(1))
    assert.equal(over.status, 429, 'forty mutations used the budget up')
  })

  it('a fragment bomb is measured without blowing up and refused', async (t) => {
    const { gqlAs } = await withTokens(t, {})
    // F0 spreads F1 twice, F1 spreads F2 twice ...: 2^30 fields if expanded naively.
    const fragments = Array.from({ length: 30 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join('\n')
    const query = `query { ...F0 }\n${fragments}\nfragment F30 on Query { cluster { nodeCount } }`
    const res = await gqlAs(TOKENS.viewer, query)
    assert.equal(res.status, 400)
    assert.ok(res.json.errors?.some((e) => e.extensions?.code === 'QUERY_TOO_COMPLEX'), JSON.stringify(res.json.errors))
  })

  it('a response over GRAPHQL_MAX_RESPONSE_BYTES is replaced by RESPONSE_TOO_LARGE', async (t) => {
    const { gqlAs } = await withTokens(t, { GRAPHQL_MAX_RESPONSE_BYTES: '4000' })
    const big = podYaml('big', 'nginx:1.27', `  annotations:\n    note: "${'z'.repeat(6000)}"\n`)
    const created = await gqlAs(TOKENS.operator, 'mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code } } }', { m: big })
    assert.deepEqual(created.json.data.createStaticPod.userErrors, [])
    const small = await gqlAs(TOKENS.viewer, '{ staticPods(maxAgeSeconds: 0) { name } }')
    assert.deepEqual(small.json.data.staticPods, [{ name: 'big' }])
    const res = await gqlAs(TOKENS.viewer, '{ staticPods { name manifest } }')
    assert.equal(res.json.errors?.[0]?.extensions?.code, 'RESPONSE_TOO_LARGE')
    assert.equal(res.json.data, null)
  })

  it('the query text is bounded in bytes and tokens before it is parsed or cached; manifests go in variables', async (t) => {
    const { gqlAs } = await withTokens(t, { GRAPHQL_MAX_QUERY_BYTES: '4096', GRAPHQL_MAX_TOKENS: '200' })
    const long = await gqlAs(TOKENS.viewer, `{ cluster { nodeCount } } # ${'x'.repeat(5000)}`)
    assert.equal(long.status, 400)
    assert.equal(long.json.errors?.[0]?.extensions?.code, 'QUERY_TOO_LARGE')
    const many = await gqlAs(TOKENS.viewer, `{ ${Array.from({ length: 80 }, (_, i) => `a${i}: __typename`).join(' ')} }`)
    assert.equal(many.status, 400)
    assert.equal(many.json.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX')
    assert.match(many.json.errors?.[0]?.message ?? '', /200 tokens/)
    // A large value in a variable is not part of the query text.
    const big = podYaml('big', 'nginx:1.27', `  annotations:\n    note: "${'z'.repeat(20_000)}"\n`)
    const created = await gqlAs(TOKENS.operator, 'mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code } } }', { m: big })
    assert.deepEqual(created.json.data.createStaticPod.userErrors, [])
    // A JSON "AST" instead of GraphQL text (mercurius would take it as a parsed document) is refused.
    const ast = JSON.stringify({ kind: 'Document', definitions: [{ kind: 'OperationDefinition', operation: 'query', selectionSet: { kind: 'SelectionSet', selections: [{ kind: 'Field', name: { kind: 'Name', value: '__typename' } }] } }] })
    const json = await gqlAs(TOKENS.viewer, ast)
    assert.equal(json.status, 400)
    assert.equal(json.json.errors?.[0]?.extensions?.code, 'GRAPHQL_PARSE_FAILED')
  })

  it('METRICS_PUBLIC=false puts /metrics behind a token; health stays public', async (t) => {
    const { app } = await withTokens(t, { METRICS_PUBLIC: 'false' })
    assert.equal((await app.inject('/metrics')).statusCode, 401)
    assert.equal((await app.inject({ url: '/metrics', headers: bearer(TOKENS.viewer) })).statusCode, 200)
    assert.equal((await app.inject('/healthz')).statusCode, 200)
    assert.equal((await app.inject('/readyz')).statusCode, 200)
  })

  it('behind a trusted proxy the address limit is per client (X-Forwarded-For), not per proxy', async (t) => {
    const { app } = await withTokens(t, { TRUST_PROXY: '127.0.0.1', AUTH_FAILURES_PER_MINUTE: '3' })
    // Documentation addresses (TEST-NET-1): only header text, no traffic goes anywhere.
    const from = (client: string, token?: string) =>
      app.inject({ url: '/api/v1/nodes', headers: { 'x-forwarded-for': client, ...(token ? bearer(token) : {}) } }).then((r) => r.statusCode)
    assert.deepEqual([await from('192.0.2.1'), await from('192.0.2.1'), await from('192.0.2.1'), await from('192.0.2.1')], [401, 401, 401, 429])
    assert.equal(await from('192.0.2.1', TOKENS.viewer), 429)
    assert.equal(await from('192.0.2.2', TOKENS.viewer), 200, 'another client behind the same proxy is not locked out')
  })

  it('WindowCounter: a window per key, refusals still count, a new window starts over, keys are bounded', () => {
    let now = 0
    const counter = new WindowCounter(3, 60_000, 2, () => now)
    assert.deepEqual([1, 2, 3, 4].map(() => counter.charge('a').allowed), [true, true, true, false])
    assert.equal(counter.check('a').allowed, false)
    assert.equal(counter.check('b').allowed, true)
    now = 30_000
    assert.equal(counter.charge('a').retryAfterSeconds, 30)
    now = 60_000
    assert.equal(counter.charge('a').allowed, true, 'a new minute')
    assert.equal(counter.charge('a', 5).allowed, false, 'several units at once')
    counter.charge('c')
    counter.charge('d')
    // Only two keys are held: 'a' (the oldest) was dropped and starts afresh.
    assert.equal(counter.check('a').allowed, true)
  })
})
