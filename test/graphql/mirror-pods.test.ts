// Mirror pods and the API server, through GraphQL: correlation with the static
// pods on the nodes, sync status, orphans, recreateMirrorPod, Node objects and
// importNodesFromCluster. The API server and the kubelets are the stand-ins of
// test/support (no real ones can run here); the client is the real
// @kubernetes/client-node reading a real kubeconfig file.

import assert from 'node:assert/strict'
import { unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { Actor } from '../../src/services/actor.ts'
import { podYaml } from '../helper.ts'
import { clusterTestbed, type ClusterTestbed } from '../support/cluster-testbed.ts'

const SYSTEM_POD = (name: string, image: string) => podYaml(name, image, '  namespace: kube-system\n')

/** Two static pods on each node, mirrored by the kubelet stand-in. */
async function withPods(bed: ClusterTestbed): Promise<void> {
  for (const dir of bed.manifestsOf.values()) {
    await writeFile(join(dir, 'kube-apiserver.yaml'), SYSTEM_POD('kube-apiserver', 'registry.k8s.io/kube-apiserver:v1.31.4'))
    await writeFile(join(dir, 'etcd.yaml'), SYSTEM_POD('etcd', 'registry.k8s.io/etcd:3.5.15-0'))
  }
  await bed.kubelet.sync()
}

const STATIC_PODS = `{ staticPods(maxAgeSeconds: 0) { id nodeName sync mirrorPodName
  mirrorPod { uid name namespace nodeName phase ready configHash configSource createdAt
    containers { name image state ready restartCount } staticPod { id } } } }`

describe('mirror pods with the API server up', () => {
  it('IN_SYNC for every static pod of three nodes, from one pod list for the whole query', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1', 'cp-2', 'cp-3'] })
    await withPods(bed)
    bed.api.resetCounts()
    const res = await bed.gql(STATIC_PODS)
    assert.equal(res.errors, undefined)
    assert.equal(res.data.staticPods.length, 6)
    for (const pod of res.data.staticPods) {
      assert.equal(pod.sync, 'IN_SYNC', pod.id)
      const mirror = bed.api.getPod('kube-system', pod.mirrorPodName)
      assert.ok(mirror, pod.mirrorPodName)
      assert.deepEqual(pod.mirrorPod, {
        uid: mirror.metadata.uid,
        name: pod.mirrorPodName,
        namespace: 'kube-system',
        nodeName: pod.nodeName,
        phase: 'Running',
        ready: true,
        configHash: mirror.metadata.annotations['kubernetes.io/config.hash'],
        configSource: 'file',
        createdAt: new Date(mirror.metadata.creationTimestamp).toISOString(),
        containers: [{ name: 'main', image: mirror.status.containerStatuses[0].image, state: 'RUNNING', ready: true, restartCount: 0 }],
        staticPod: { id: pod.id },
      })
    }
    // Six static pods, three nodes, two fields each asking: one list across the cluster.
    assert.deepEqual(bed.api.requests.map((r) => `${r.method} ${r.path}`), ['GET /api/v1/pods'])

    const one = await bed.gql('{ node(name: "cp-2") { mirrorPods { name } kubernetes { ready kubeletVersion internalIP unschedulable } } }')
    assert.deepEqual(one.data.node, {
      mirrorPods: [{ name: 'etcd-cp-2' }, { name: 'kube-apiserver-cp-2' }],
      kubernetes: { ready: true, kubeletVersion: 'v1.31.4', internalIP: '10.0.0.12', unschedulable: false },
    })
    // One node: the API server filters (field selectors), nothing else is transferred.
    assert.deepEqual(
      bed.api.requests.slice(1).map((r) => `${r.path}?${new URLSearchParams(r.query)}`).sort(),
      ['/api/v1/nodes?fieldSelector=metadata.name%3Dcp-2', '/api/v1/pods?fieldSelector=spec.nodeName%3Dcp-2'],
    )
  })

  it('mirrorPods lists what the API server has, by node and namespace; staticPod links back', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1', 'cp-2'] })
    await withPods(bed)
    // A pod that is not a mirror pod is not listed.
    bed.api.putPod({ metadata: { name: 'coredns-1', namespace: 'kube-system' }, spec: { nodeName: 'cp-1', containers: [{ name: 'c', image: 'coredns' }] }, status: { phase: 'Running' } })
    const all = await bed.gql('{ mirrorPods { name nodeName staticPod { id } } }')
    assert.deepEqual(all.data.mirrorPods.map((m: { name: string; staticPod: { id: string } }) => `${m.name} ${m.staticPod.id}`), [
      'etcd-cp-1 cp-1/kube-system/etcd',
      'kube-apiserver-cp-1 cp-1/kube-system/kube-apiserver',
      'etcd-cp-2 cp-2/kube-system/etcd',
      'kube-apiserver-cp-2 cp-2/kube-system/kube-apiserver',
    ])
    const byNode = await bed.gql('{ mirrorPods(node: "cp-2", namespace: "kube-system") { name } }')
    assert.deepEqual(byNode.data.mirrorPods, [{ name: 'etcd-cp-2' }, { name: 'kube-apiserver-cp-2' }])
    const otherNamespace = await bed.gql('{ mirrorPods(namespace: "default") { name } }')
    assert.deepEqual(otherNamespace.data.mirrorPods, [])
  })

  it('a new image gives MIRROR_OUTDATED until the kubelet catches up, then IN_SYNC with a new mirror pod', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1', 'cp-2'] })
    await withPods(bed)
    const before = bed.api.getPod('kube-system', 'etcd-cp-2')
    const update = await bed.gql(
      `mutation($m: String!) { updateStaticPod(input: {node: "cp-2", namespace: "kube-system", name: "etcd", manifest: $m}) {
        staticPod { sync } userErrors { code } } }`,
      { m: SYSTEM_POD('etcd', 'registry.k8s.io/etcd:3.5.16-0') },
    )
    assert.deepEqual(update.data.updateStaticPod, { staticPod: { sync: 'MIRROR_OUTDATED' }, userErrors: [] })
    const lagging = await bed.gql('{ staticPods(node: "cp-2", maxAgeSeconds: 0) { name sync mirrorPod { uid } } }')
    assert.deepEqual(lagging.data.staticPods, [
      { name: 'etcd', sync: 'MIRROR_OUTDATED', mirrorPod: { uid: before?.metadata.uid } },
      { name: 'kube-apiserver', sync: 'IN_SYNC', mirrorPod: { uid: bed.api.getPod('kube-system', 'kube-apiserver-cp-2')?.metadata.uid } },
    ])
    await bed.kubelet.sync()
    const caughtUp = await bed.gql('{ staticPod(node: "cp-2", namespace: "kube-system", name: "etcd") { sync mirrorPod { uid } } }')
    assert.equal(caughtUp.data.staticPod.sync, 'IN_SYNC')
    assert.notEqual(caughtUp.data.staticPod.mirrorPod.uid, before?.metadata.uid)
  })

  it('a deleted manifest leaves an orphan mirror pod (staticPod null) until the kubelet removes it', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    await withPods(bed)
    const del = await bed.gql('mutation { deleteStaticPod(input: {node: "cp-1", namespace: "kube-system", name: "etcd"}) { deleted userErrors { code } } }')
    assert.deepEqual(del.data.deleteStaticPod, { deleted: true, userErrors: [] })
    const orphaned = await bed.gql('{ node(name: "cp-1") { mirrorPods { name staticPod { name } } } }')
    assert.deepEqual(orphaned.data.node.mirrorPods, [
      { name: 'etcd-cp-1', staticPod: null },
      { name: 'kube-apiserver-cp-1', staticPod: { name: 'kube-apiserver' } },
    ])
    await bed.kubelet.sync()
    const cleaned = await bed.gql('{ mirrorPods(node: "cp-1") { name } }')
    assert.deepEqual(cleaned.data.mirrorPods, [{ name: 'kube-apiserver-cp-1' }])
  })

  it('a static pod whose mirror pod is missing is MIRROR_MISSING', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    await withPods(bed)
    await writeFile(join(bed.manifests, 'scheduler.yaml'), SYSTEM_POD('kube-scheduler', 'registry.k8s.io/kube-scheduler:v1.31.4'))
    const res = await bed.gql('{ staticPod(node: "cp-1", name: "kube-scheduler", maxAgeSeconds: 0) { sync mirrorPod { uid } } }')
    assert.deepEqual(res.data.staticPod, { sync: 'MIRROR_MISSING', mirrorPod: null })
    assert.equal(res.errors, undefined)
  })

  it('recreateMirrorPod deletes the mirror pod through the API server; the kubelet posts a new uid; audited', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    await withPods(bed)
    const before = bed.api.getPod('kube-system', 'etcd-cp-1')?.metadata.uid
    const res = await bed.gql('mutation { recreateMirrorPod(input: {namespace: "kube-system", name: "etcd-cp-1"}) { deleted userErrors { code } } }')
    assert.deepEqual(res.data.recreateMirrorPod, { deleted: true, userErrors: [] })
    assert.equal(bed.api.getPod('kube-system', 'etcd-cp-1'), undefined)
    assert.ok(bed.api.requests.some((r) => r.method === 'DELETE' && r.path === '/api/v1/namespaces/kube-system/pods/etcd-cp-1'))
    await bed.kubelet.sync()
    const after = await bed.gql('{ staticPod(node: "cp-1", namespace: "kube-system", name: "etcd") { sync mirrorPod { uid } } }')
    assert.equal(after.data.staticPod.sync, 'IN_SYNC')
    assert.ok(after.data.staticPod.mirrorPod.uid && after.data.staticPod.mirrorPod.uid !== before)

    // Only mirror pods: a pod the kubelet did not post, or none at all, is NOT_FOUND and nothing is deleted.
    bed.api.putPod({ metadata: { name: 'web-1', namespace: 'default' }, spec: { nodeName: 'cp-1', containers: [{ name: 'c', image: 'nginx' }] }, status: { phase: 'Running' } })
    const notMirror = await bed.gql('mutation { recreateMirrorPod(input: {namespace: "default", name: "web-1"}) { deleted userErrors { code message } } }')
    assert.equal(notMirror.data.recreateMirrorPod.deleted, false)
    assert.equal(notMirror.data.recreateMirrorPod.userErrors[0].code, 'NOT_FOUND')
    assert.match(notMirror.data.recreateMirrorPod.userErrors[0].message, /not a mirror pod/)
    assert.ok(bed.api.getPod('default', 'web-1'))
    const missing = await bed.gql('mutation { recreateMirrorPod(input: {namespace: "kube-system", name: "nope-cp-1"}) { deleted userErrors { code } } }')
    assert.deepEqual(missing.data.recreateMirrorPod, { deleted: false, userErrors: [{ code: 'NOT_FOUND' }] })

    const audit = await bed.gql('{ auditEvents(limit: 3) { action node target result } }')
    assert.deepEqual(audit.data.auditEvents, [
      { action: 'recreateMirrorPod', node: null, target: 'kube-system/nope-cp-1', result: 'NOT_FOUND' },
      { action: 'recreateMirrorPod', node: null, target: 'default/web-1', result: 'NOT_FOUND' },
      { action: 'recreateMirrorPod', node: 'cp-1', target: 'kube-system/etcd-cp-1', result: 'OK' },
    ])
  })

  it('a static pod mutation addressed by the mirror pod name is NOT_FOUND naming the static pod', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    await withPods(bed)
    const res = await bed.gql('mutation { restartStaticPod(input: {node: "cp-1", name: "etcd-cp-1"}) { userErrors { code message } } }')
    const [err] = res.data.restartStaticPod.userErrors
    assert.equal(err.code, 'NOT_FOUND')
    assert.match(err.message, /mirror pod of static pod kube-system\/etcd/)
  })

  it('an actor limited to some nodes sees and recreates only their mirror pods and Node objects', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1', 'cp-2', 'edge-1'] })
    await withPods(bed)
    const { mirrorPods, cluster } = bed.app.services
    const viewer: Actor = { name: 'cp-viewer', role: 'viewer', nodes: ['cp-*'] }
    const all = await mirrorPods.list({ nodes: null }, viewer)
    assert.deepEqual([...new Set(all.map((m) => m.nodeName))], ['cp-1', 'cp-2'])
    await assert.rejects(mirrorPods.list({ nodes: ['edge-1'] }, viewer), { code: 'FORBIDDEN' })
    assert.deepEqual([...(await cluster.kubernetesNodes(null, viewer)).keys()], ['cp-1', 'cp-2'])

    const forbidden = await mirrorPods.recreateMirrorPod({ namespace: 'kube-system', name: 'etcd-edge-1' }, { name: 'cp-operator', role: 'operator', nodes: ['cp-*'] })
    assert.deepEqual(forbidden.userErrors.map((e) => e.code), ['FORBIDDEN'])
    const asViewer = await mirrorPods.recreateMirrorPod({ namespace: 'kube-system', name: 'etcd-cp-1' }, viewer)
    assert.deepEqual(asViewer.userErrors.map((e) => e.code), ['FORBIDDEN'])
    assert.ok(bed.api.getPod('kube-system', 'etcd-edge-1'))
    assert.ok(bed.api.getPod('kube-system', 'etcd-cp-1'))
  })

  it('cluster.apiServer reports the API server: configured, reachable, version, checkedAt', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    const res = await bed.gql('{ cluster { apiServer { configured reachable version checkedAt error } nodeCount } }')
    const { apiServer } = res.data.cluster
    assert.deepEqual({ ...apiServer, checkedAt: typeof apiServer.checkedAt }, { configured: true, reachable: true, version: 'v1.31.4', checkedAt: 'string', error: null })
    assert.equal(bed.api.count('/version'), 1)
  })
})

describe('a request over 50 nodes', () => {
  it('makes one pod list and one node list, whatever the number of nodes and fields', async (t) => {
    const names = Array.from({ length: 50 }, (_, i) => `node-${String(i + 1).padStart(2, '0')}`)
    const bed = await clusterTestbed(t, { nodes: names })
    await withPods(bed)
    bed.api.resetCounts()
    const res = await bed.gql(`{ nodes { name kubernetes { ready } mirrorPods { name staticPod { id } }
      staticPods(maxAgeSeconds: 0) { sync mirrorPod { uid staticPod { id } } } } }`)
    assert.equal(res.errors, undefined)
    assert.equal(res.data.nodes.length, 50)
    const pods = res.data.nodes.flatMap((n: { staticPods: unknown[] }) => n.staticPods)
    assert.equal(pods.length, 100)
    assert.ok(pods.every((p: { sync: string }) => p.sync === 'IN_SYNC'))
    assert.deepEqual(bed.api.requests.map((r) => `${r.method} ${r.path}`).sort(), ['GET /api/v1/nodes', 'GET /api/v1/pods'])

    bed.api.resetCounts()
    const flat = await bed.gql('{ staticPods { sync mirrorPod { name } } mirrorPods { name } }')
    assert.equal(flat.data.staticPods.length, 100)
    assert.equal(flat.data.mirrorPods.length, 100)
    // The mirrorPods query is its own list; the 100 static pods share one.
    assert.equal(bed.api.count('/api/v1/pods'), 2)
  })
})

describe('importNodesFromCluster', () => {
  it('registers only unknown nodes, unverified, at their InternalIP; idempotent', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    bed.api.addNode({ name: 'worker-1', internalIP: '127.0.1.1' })
    bed.api.addNode({ name: 'worker-2', internalIP: '127.0.1.2', labels: { pool: 'gpu' } })
    const first = await bed.gql(`mutation { importNodesFromCluster {
      imported { name host port user staticPodPath hostKeyFingerprint kind labels { key value } } skipped userErrors { code } } }`)
    const { imported, skipped, userErrors } = first.data.importNodesFromCluster
    assert.deepEqual(userErrors, [])
    assert.deepEqual(skipped, ['cp-1'])
    assert.deepEqual(imported.map((n: { name: string; host: string }) => [n.name, n.host]), [['worker-1', '127.0.1.1'], ['worker-2', '127.0.1.2']])
    for (const node of imported) {
      assert.deepEqual({ ...node, name: undefined, host: undefined, labels: undefined }, {
        name: undefined, host: undefined, labels: undefined, port: 22, user: 'root', staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: null, kind: 'SSH',
      })
    }
    assert.ok(imported[1].labels.some((l: { key: string; value: string }) => l.key === 'pool' && l.value === 'gpu'))

    // Unverified: nothing is read from them until an admin pins a host key.
    const read = await bed.gql('{ staticPods(node: "worker-1", maxAgeSeconds: 0) { id } }')
    assert.deepEqual(read.errors?.map((e) => e.extensions?.code), ['NODE_UNVERIFIED'])

    const again = await bed.gql('mutation { importNodesFromCluster { imported { name } skipped userErrors { code } } }')
    assert.deepEqual(again.data.importNodesFromCluster, { imported: [], skipped: ['cp-1', 'worker-1', 'worker-2'], userErrors: [] })
    const selected = await bed.gql('mutation { importNodesFromCluster(labelSelector: "pool=gpu") { imported { name } skipped } }')
    assert.deepEqual(selected.data.importNodesFromCluster, { imported: [], skipped: ['worker-2'] })
    const nodes = await bed.gql('{ nodes { name } }')
    assert.deepEqual(nodes.data.nodes.map((n: { name: string }) => n.name), ['cp-1', 'worker-1', 'worker-2'])
    const audit = await bed.gql('{ auditEvents(limit: 1) { action result message } }')
    assert.deepEqual(audit.data.auditEvents[0].action, 'importNodesFromCluster')
    const bad = await bed.gql('mutation { importNodesFromCluster(labelSelector: "pool=(") { imported { name } userErrors { code } } }')
    assert.deepEqual(bad.data.importNodesFromCluster, { imported: [], userErrors: [{ code: 'VALIDATION_FAILED' }] })
  })

  it('an admin limited to some nodes imports only those', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'] })
    bed.api.addNode({ name: 'cp-2', internalIP: '127.0.1.2' })
    bed.api.addNode({ name: 'edge-1', internalIP: '10.0.2.1' })
    const result = await bed.app.services.cluster.importNodes(null, { name: 'cp-admin', role: 'admin', nodes: ['cp-*'] })
    assert.deepEqual({ imported: result.imported.map((n) => n.name), skipped: result.skipped }, { imported: ['cp-2'], skipped: ['cp-1'] })
    const operator = await bed.app.services.cluster.importNodes(null, { name: 'op', role: 'operator', nodes: null })
    assert.deepEqual(operator.userErrors.map((e) => e.code), ['FORBIDDEN'])
  })
})

describe('the API server down', () => {
  it('static pods are served unchanged, sync API_SERVER_UNAVAILABLE with one error, fast; the breaker then makes no call', async (t) => {
    let offsetMs = 0
    const bed = await clusterTestbed(t, {
      nodes: ['cp-1', 'cp-2', 'cp-3'],
      env: { KUBE_REQUEST_TIMEOUT_MS: '10000', KUBE_RETRY_AFTER_MS: '60000' },
      clock: () => new Date(Date.now() + offsetMs),
    })
    await withPods(bed)
    const up = await bed.gql('{ staticPods { sync } }')
    assert.ok(up.data.staticPods.every((p: { sync: string }) => p.sync === 'IN_SYNC'))

    await bed.api.stop()
    const started = performance.now()
    const down = await bed.gql('{ staticPods(maxAgeSeconds: 0) { id sync mirrorPod { uid } } mirrorPods { name } nodes { kubernetes { ready } } }')
    const tookMs = performance.now() - started
    // A refused connection is an answer: nothing waits for the 10 s request timeout.
    assert.ok(tookMs < 5_000, `took ${tookMs} ms`)
    assert.equal(down.data.staticPods.length, 6)
    for (const pod of down.data.staticPods) assert.deepEqual({ sync: pod.sync, mirrorPod: pod.mirrorPod }, { sync: 'API_SERVER_UNAVAILABLE', mirrorPod: null })
    assert.equal(down.data.mirrorPods, null)
    assert.deepEqual(down.data.nodes, [{ kubernetes: null }, { kubernetes: null }, { kubernetes: null }])
    assert.deepEqual(down.errors?.map((e) => e.extensions?.code), ['API_SERVER_UNAVAILABLE'])
    assert.match(down.errors?.[0]?.message ?? '', /unreachable.*ECONNREFUSED/)

    // Back up, but the breaker is open: no call at all until the retry time.
    await bed.api.start()
    bed.api.resetCounts()
    const held = await bed.gql('{ staticPods { sync } mirrorPods { name } cluster { apiServer { reachable error } } }')
    assert.ok(held.data.staticPods.every((p: { sync: string }) => p.sync === 'API_SERVER_UNAVAILABLE'))
    assert.equal(held.data.cluster.apiServer.reachable, false)
    assert.match(held.data.cluster.apiServer.error, /ECONNREFUSED/)
    assert.deepEqual(held.errors?.map((e) => e.extensions?.code), ['API_SERVER_UNAVAILABLE'])
    assert.equal(bed.api.requests.length, 0)

    // Past the retry time, the first call probes and its success closes the breaker;
    // the other calls of the same query wait for it and go through.
    offsetMs = 61_000
    const back = await bed.gql('{ staticPods { sync } mirrorPods { name } nodes { kubernetes { ready } } }')
    assert.equal(back.errors, undefined)
    assert.ok(back.data.staticPods.every((p: { sync: string }) => p.sync === 'IN_SYNC'))
    assert.equal(back.data.mirrorPods.length, 6)
    assert.deepEqual(back.data.nodes, [{ kubernetes: { ready: true } }, { kubernetes: { ready: true } }, { kubernetes: { ready: true } }])
    assert.deepEqual([bed.api.count('/api/v1/pods'), bed.api.count('/api/v1/nodes')], [2, 1])
  })

  it('an API server that accepts but never answers costs one request timeout, then nothing', async (t) => {
    const bed = await clusterTestbed(t, { nodes: ['cp-1'], env: { KUBE_REQUEST_TIMEOUT_MS: '2000' } })
    await withPods(bed)
    bed.api.hang()
    bed.api.resetCounts()
    let started = performance.now()
    const first = await bed.gql('{ staticPods(maxAgeSeconds: 0) { id sync mirrorPod { uid } } node(name: "cp-1") { mirrorPods { name } kubernetes { ready } } }')
    const firstMs = performance.now() - started
    // One timeout, not one per API call of the query (three of them would be 6 s).
    assert.ok(firstMs >= 1990 && firstMs < 5_000, `took ${firstMs} ms`)
    assert.deepEqual(first.data.staticPods.map((p: { sync: string }) => p.sync), ['API_SERVER_UNAVAILABLE', 'API_SERVER_UNAVAILABLE'])
    assert.deepEqual(first.errors?.map((e) => [e.extensions?.code, /within 2000 ms/.test(e.message)]), [['API_SERVER_UNAVAILABLE', true]])

    const asked = bed.api.requests.length
    started = performance.now()
    const second = await bed.gql('{ staticPods { sync } mirrorPods { name } }')
    const secondMs = performance.now() - started
    // The breaker is open: no call, so no 2 s timeout either.
    assert.ok(secondMs < 1_500, `took ${secondMs} ms`)
    assert.equal(second.data.mirrorPods, null)
    assert.equal(bed.api.requests.length, asked, 'no API call while the breaker is open')
    const mutation = await bed.gql('mutation($m: String!) { createStaticPod(input: {node: "cp-1", manifest: $m}) { staticPod { id sync } userErrors { code } } }', {
      m: podYaml('web'),
    })
    assert.deepEqual(mutation.data.createStaticPod, { staticPod: { id: 'cp-1/default/web', sync: 'API_SERVER_UNAVAILABLE' }, userErrors: [] })
    const recreate = await bed.gql('mutation { recreateMirrorPod(input: {namespace: "kube-system", name: "etcd-cp-1"}) { deleted userErrors { code } } }')
    assert.deepEqual(recreate.data.recreateMirrorPod, { deleted: false, userErrors: [{ code: 'API_SERVER_UNAVAILABLE' }] })
    assert.equal(bed.api.requests.length, asked)
  })
})

describe('no API server configured', () => {
  it('says so; static pods work; mirror pod fields say why they are empty', async (t) => {
    const { build } = await import('../helper.ts')
    const app = await build(t)
    await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
    const res = await app.gql('{ cluster { apiServer { configured reachable version error } } staticPods { id sync mirrorPod { uid } } mirrorPods { name } }')
    assert.deepEqual(res.data.cluster.apiServer.configured, false)
    assert.deepEqual(res.data.cluster.apiServer.reachable, false)
    assert.match(res.data.cluster.apiServer.error, /no API server is configured/)
    assert.deepEqual(res.data.staticPods, [{ id: 'local/default/web', sync: 'API_SERVER_UNAVAILABLE', mirrorPod: null }])
    assert.equal(res.data.mirrorPods, null)
    assert.deepEqual(res.errors?.map((e) => e.extensions?.code), ['API_SERVER_UNAVAILABLE'])
    const imported = await app.gql('mutation { importNodesFromCluster { imported { name } userErrors { code } } }')
    assert.deepEqual(imported.data.importNodesFromCluster, { imported: [], userErrors: [{ code: 'API_SERVER_UNAVAILABLE' }] })
    await unlink(join(app.manifests, 'web.yaml'))
  })
})
