// /metrics parses as Prometheus text and has the series operators alert on.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { build, podYaml } from '../helper.ts'

/** A strict-enough reading of the Prometheus text format (0.0.4). */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' ) continue
    if (line.startsWith('#')) {
      assert.match(line, /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/, line)
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line)
    assert.ok(m, `not a sample line: ${line}`)
    samples.set(m[1] as string, Number(m[2]))
  }
  return samples
}

describe('/metrics', () => {
  it('is Prometheus text with HTTP, GraphQL, node agent, SSH pool, breaker and store series', async (t) => {
    const { app, gql } = await build(t)
    await gql('mutation($m: String!) { createStaticPod(input: {node: "local", manifest: $m}) { userErrors { code } } }', { m: podYaml('web') })
    await gql('query Pods { staticPods(maxAgeSeconds: 0) { name } }')
    const res = await app.inject('/metrics')
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    const samples = parsePrometheus(res.body)
    const has = (prefix: string) => [...samples.keys()].some((k) => k.startsWith(prefix))
    for (const series of [
      'staticpod_http_requests_total{',
      'staticpod_http_request_duration_seconds_bucket{',
      'staticpod_graphql_operations_total{type="query",outcome="ok"}',
      'staticpod_graphql_operation_duration_seconds_count{type="mutation"}',
      'staticpod_node_agent_read_duration_seconds_count{node="local"}',
      'staticpod_ssh_pool_connections',
      'staticpod_api_server_breaker_state',
      'staticpod_store_operation_duration_seconds_count{method="appendRevision",outcome="ok"}',
      'staticpod_process_resident_memory_bytes',
    ]) {
      assert.ok(has(series), `missing ${series}`)
    }
    assert.equal(samples.get('staticpod_graphql_operations_total{type="query",outcome="ok"}'), 1)
  })
})
