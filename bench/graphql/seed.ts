// Seeds a SQLite store with N registered nodes × P static pods each, observed
// just now, as a fleet the service has already read: `staticPods` within
// maxAgeSeconds is then served from the store without contacting any node.

import { createHash } from 'node:crypto'
import { SqliteStore } from '../../src/store/sqlite.ts'
import type { ObservedPod } from '../../src/domain.ts'

export const POD_NAMES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'haproxy', 'keepalived', 'node-exporter', 'log-shipper']

export function manifestFor(node: number, pod: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${pod}
  namespace: kube-system
  labels:
    component: ${pod}
    tier: control-plane
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: ${pod}
    image: registry.k8s.io/${pod}:v1.31.${node % 7}
    command:
    - ${pod}
    - --v=2
    resources:
      requests:
        cpu: 100m
`
}

export async function seed(path: string, nodes: number, podsPerNode: number): Promise<void> {
  const store = SqliteStore.open(path)
  const now = new Date().toISOString()
  for (let n = 0; n < nodes; n++) {
    const name = `cp-${String(n).padStart(4, '0')}`
    await store.createNode({
      name,
      kind: 'ssh',
      ssh: {
        host: `10.1.${Math.floor(n / 250)}.${(n % 250) + 1}`,
        port: 22,
        user: 'root',
        privilege: 'NONE',
        sftpServer: null,
        via: null,
        hostKeyFingerprint: `SHA256:${createHash('sha256').update(name).digest('base64').replace(/=+$/, '')}`,
        observedHostKeyFingerprint: null,
      },
      staticPodPath: '/etc/kubernetes/manifests',
      staticPodPathFrom: 'given',
      labels: [{ key: 'rack', value: `r${n % 20}` }],
      createdAt: now,
      updatedAt: now,
    })
    const pods: ObservedPod[] = []
    for (const pod of POD_NAMES.slice(0, podsPerNode)) {
      const manifest = manifestFor(n, pod)
      const hash = createHash('sha256').update(manifest).digest('hex')
      const rev = await store.appendRevision({ node: name, namespace: 'kube-system', name: pod, hash, manifest, fileName: `${pod}.yaml`, action: 'OBSERVED', actor: null, recordedAt: now })
      pods.push({ namespace: 'kube-system', name: pod, fileName: `${pod}.yaml`, hash, revision: rev.revision, managed: false, manifest })
    }
    await store.putObservation({
      node: name,
      observedAt: now,
      pods,
      findings: [],
      agent: { reachable: true, lastContactAt: now, lastError: null, latencyMs: 1.2 },
      kubelet: { healthy: true, checkedAt: now, message: 'ok' },
      kubeletUnavailableReason: null,
      runtime: null,
      runtimeUnavailableReason: 'crictl not found',
    })
  }
  await store.close()
}
