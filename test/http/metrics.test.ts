// /metrics parses as Prometheus text and has the series operators alert on.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, makeTempDir, podYaml } from '../helper.ts'
import { FakeApiServer } from '../support/fake-apiserver.ts'

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

  it('the API server breaker gauge follows the breaker: closed, open while it is down, half-open when due a probe, closed once it answers', async (t) => {
    const none = await build(t)
    assert.equal(await breakerGauge(none.app), -1, 'no API server configured')

    // The API server stand-in of test/support/fake-apiserver.ts (none can run here), stopped and started again.
    const dir = await makeTempDir()
    const api = new FakeApiServer()
    await api.start()
    t.after(async () => {
      await api.stop()
      await rm(dir, { recursive: true, force: true })
    })
    const retryAfterMs = 600
    const { app, gql } = await build(t, {
      env: { KUBECONFIG: await api.writeKubeconfig(join(dir, 'kubeconfig')), KUBE_RETRY_AFTER_MS: String(retryAfterMs), KUBE_REQUEST_TIMEOUT_MS: '2000' },
    })
    assert.equal(await breakerGauge(app), 0, 'nothing asked yet: closed')
    assert.deepEqual((await gql('{ mirrorPods { name } }')).data, { mirrorPods: [] })
    assert.equal(await breakerGauge(app), 0)

    await api.stop()
    const failed = await gql('{ mirrorPods { name } }')
    assert.equal(failed.errors?.[0]?.extensions?.code, 'API_SERVER_UNAVAILABLE')
    assert.equal(await breakerGauge(app), 1, 'open: calls fail at once')
    const requestsBefore = api.count()
    assert.equal((await gql('{ mirrorPods { name } }')).errors?.[0]?.extensions?.code, 'API_SERVER_UNAVAILABLE')
    assert.equal(await breakerGauge(app), 1)
    assert.equal(api.count(), requestsBefore)

    await sleep(retryAfterMs + 50)
    assert.equal(await breakerGauge(app), 2, 'half-open: the next call is the probe')
    await api.start()
    assert.deepEqual((await gql('{ mirrorPods { name } }')).data, { mirrorPods: [] })
    assert.equal(await breakerGauge(app), 0, 'closed again after the probe answered')
  })
})

/** The gauge's sample (only its line: right after start the default process metrics may not have a value yet). */
async function breakerGauge(app: { inject(url: string): Promise<{ body: string }> }): Promise<number | undefined> {
  const sample = /^staticpod_api_server_breaker_state (-?\d+)$/m.exec((await app.inject('/metrics')).body)
  return sample ? Number(sample[1]) : undefined
}
