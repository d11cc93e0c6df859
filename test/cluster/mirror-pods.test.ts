// Reading mirror pods and Node objects, and the sync rule: pure functions.

import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { V1Node, V1Pod } from '@kubernetes/client-node'
import { lazyKubeApi } from '../../src/cluster/kube.ts'
import { isMirrorPod, kubernetesNodeView, mirrorPodView, syncStatus } from '../../src/cluster/mirror-pods.ts'
import { FakeApiServer } from '../support/fake-apiserver.ts'
import { mirrorPodOf } from '../support/fake-kubelet.ts'

const manifest = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'etcd', namespace: 'kube-system' },
  spec: { containers: [{ name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0' }], initContainers: [{ name: 'init', image: 'busybox:1.36' }] },
}
const mirror = { ...mirrorPodOf(manifest, 'CP-1', '/etc/kubernetes/manifests/etcd.yaml', Buffer.from('x')), metadata: { ...mirrorPodOf(manifest, 'CP-1', '/p', Buffer.from('x')).metadata, uid: 'u-1', creationTimestamp: '2025-01-01T00:00:00Z' } } as V1Pod

test('a mirror pod is read with its config annotations, node, readiness and container states', () => {
  assert.equal(isMirrorPod(mirror), true)
  assert.equal(isMirrorPod({ metadata: { name: 'web', annotations: { other: 'x' } } }), false)
  const view = mirrorPodView(mirror)
  assert.deepEqual(view, {
    uid: 'u-1',
    namespace: 'kube-system',
    name: 'etcd-cp-1',
    nodeName: 'CP-1',
    phase: 'Running',
    ready: true,
    configHash: mirror.metadata?.annotations?.['kubernetes.io/config.hash'],
    configSource: 'file',
    createdAt: '2025-01-01T00:00:00.000Z',
    containers: [
      { name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0', state: 'RUNNING', ready: true, restartCount: 0 },
      { name: 'init', image: 'docker.io/library/busybox:1.36', state: 'TERMINATED', ready: true, restartCount: 0 },
    ],
    specContainers: [
      { name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0', init: false },
      { name: 'init', image: 'busybox:1.36', init: true },
    ],
  })
  const waiting = mirrorPodView({ ...mirror, status: { phase: 'Pending', containerStatuses: [{ name: 'etcd', image: '', imageID: '', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } } }, { name: 'x', image: 'i', imageID: '', ready: false, restartCount: 0 }] } })
  assert.deepEqual(waiting?.containers.map((c) => [c.state, c.image, c.restartCount]), [['WAITING', null, 3], ['UNKNOWN', 'i', 0]])
  assert.equal(waiting?.ready, null)
  assert.equal(mirrorPodView({ metadata: { name: 'no-uid' }, spec: { nodeName: 'n', containers: [] } }), null)
})

test('sync: the manifest containers against the spec the kubelet posted, whatever the order or the resolved status images', () => {
  const view = mirrorPodView(mirror)
  const spec = (image: string) => [
    { name: 'init', image: 'busybox:1.36', init: true },
    { name: 'etcd', image, init: false },
  ]
  assert.equal(syncStatus(spec('registry.k8s.io/etcd:3.5.15-0'), view), 'IN_SYNC')
  assert.equal(syncStatus(spec('registry.k8s.io/etcd:3.5.16-0'), view), 'MIRROR_OUTDATED')
  assert.equal(syncStatus([{ name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0', init: false }], view), 'MIRROR_OUTDATED', 'a container less')
  assert.equal(syncStatus([{ name: 'etcd', image: 'registry.k8s.io/etcd:3.5.15-0', init: false }, { name: 'init', image: 'busybox:1.36', init: false }], view), 'MIRROR_OUTDATED', 'init or not')
  assert.equal(syncStatus(spec('x'), null), 'MIRROR_MISSING')
})

test('a Node object: Ready condition (Unknown is null), kubelet version, InternalIP, unschedulable', () => {
  const api = new FakeApiServer()
  const ready = api.addNode({ name: 'cp-1', internalIP: '10.0.0.11' }) as V1Node
  assert.deepEqual({ ...kubernetesNodeView(ready), labels: undefined }, { name: 'cp-1', ready: true, kubeletVersion: 'v1.31.4', internalIP: '10.0.0.11', unschedulable: false, labels: undefined })
  const lost = api.addNode({ name: 'cp-2', internalIP: '10.0.0.12', ready: false, unschedulable: true }) as V1Node
  assert.deepEqual([kubernetesNodeView(lost)?.ready, kubernetesNodeView(lost)?.unschedulable], [null, true])
  assert.equal(kubernetesNodeView({ status: {} }), null)
})

test('client-node is loaded on the first call, not before (cold starts)', async () => {
  let loads = 0
  const api = lazyKubeApi({ kind: 'kubeconfig', path: '/nonexistent/kubeconfig' }, 500, async () => {
    loads++
    return import('@kubernetes/client-node')
  })
  assert.equal(loads, 0)
  await assert.rejects(api.version())
  assert.equal(loads, 1)
})

test('nothing in src imports client-node at load time: only types, and the lazy import in cluster/kube.ts', async () => {
  const root = new URL('../../src/', import.meta.url).pathname
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts'))
  const eager: string[] = []
  for (const file of files) {
    const text = await readFile(join(root, file), 'utf8')
    for (const line of text.split('\n')) {
      if (/^\s*import\s(?!type\s).*['"]@kubernetes\/client-node['"]/.test(line) || /^\s*export\s.*from\s+['"]@kubernetes\/client-node['"]/.test(line) && !/export\s+type/.test(line)) {
        eager.push(`${file}: ${line.trim()}`)
      }
    }
  }
  assert.deepEqual(eager, [])
})
