// The API server settings: parsed with the rest of the configuration, and the
// source of the client (KUBECONFIG, in-cluster, none) chosen from them.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import pino from 'pino'
import { loadConfig } from '../../src/config.ts'
import { AuditService } from '../../src/services/audit.ts'
import { ClusterService, type ClusterSettings } from '../../src/services/cluster.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'

test('defaults, and a bad value stops the start with one line naming the variable', () => {
  const c = loadConfig({})
  assert.deepEqual([c.kubeconfig, c.kubeInCluster, c.kubeRequestTimeoutMs, c.kubeRetryAfterMs], [undefined, false, 3000, 10_000])
  const inPod = loadConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBE_REQUEST_TIMEOUT_MS: '500', KUBE_RETRY_AFTER_MS: '0' })
  assert.deepEqual([inPod.kubeInCluster, inPod.kubeRequestTimeoutMs, inPod.kubeRetryAfterMs], [true, 500, 0])
  assert.throws(() => loadConfig({ KUBE_REQUEST_TIMEOUT_MS: 'soon' }), /^ConfigError: Invalid KUBE_REQUEST_TIMEOUT_MS: .*"soon"/)
  assert.throws(() => loadConfig({ KUBE_REQUEST_TIMEOUT_MS: '0' }), /Invalid KUBE_REQUEST_TIMEOUT_MS/)
})

function cluster(settings: Partial<ClusterSettings>): ClusterService {
  const store = SqliteStore.open(':memory:')
  const clock = () => new Date()
  return new ClusterService({
    settings: { kubeconfig: undefined, inCluster: false, requestTimeoutMs: 500, retryAfterMs: 10_000, ...settings },
    store,
    audit: new AuditService(store, clock, pino({ level: 'silent' })),
    clock,
  })
}

test('none configured: not configured, and every call is API_SERVER_UNAVAILABLE at once', async () => {
  const none = cluster({})
  assert.equal(none.configured, false)
  assert.deepEqual(await none.apiServerStatus(), {
    configured: false,
    reachable: false,
    version: null,
    checkedAt: null,
    error: 'no API server is configured (set KUBECONFIG, or run in a pod); static pods are read from the nodes',
  })
  await assert.rejects(none.call(async () => 'never'), { code: 'API_SERVER_UNAVAILABLE' })
})

test('a missing kubeconfig file, or in-cluster config outside a pod: configured, unreachable, saying why', async () => {
  const missing = await cluster({ kubeconfig: '/nonexistent/kubeconfig' }).apiServerStatus()
  assert.equal(missing.configured, true)
  assert.equal(missing.reachable, false)
  assert.match(missing.error ?? '', /ENOENT.*nonexistent/)
  const inCluster = await cluster({ inCluster: true }).apiServerStatus()
  assert.deepEqual([inCluster.configured, inCluster.reachable, typeof inCluster.error], [true, false, 'string'])
})
