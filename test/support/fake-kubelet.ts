// A stand-in for the kubelets of the test nodes, as far as the API server sees
// them: no real kubelet can run here. For each node it reads the staticPodPath
// directory as the kubelet does (every regular file whose name does not start
// with '.'), and keeps one mirror pod per static pod in the fake API server:
//
//   - named <name>-<node lowercased>, in the manifest's namespace (default: default);
//   - annotations kubernetes.io/config.mirror and kubernetes.io/config.hash (the
//     pod UID the kubelet derives from file content, node and path),
//     config.source "file" and config.seen;
//   - an ownerReference to the Node object (controller: true);
//   - status as a running pod: phase Running, conditions, containerStatuses.
//
// A manifest whose content changed gets a new config hash, so its mirror pod is
// deleted and posted again (new uid), as the kubelet does. A deleted mirror pod
// is posted again; a mirror pod whose manifest is gone is deleted.
//
// The kubelet lags behind its directory: it re-reads it every 20 s. Here each
// sync() is one such pass, so a test controls the lag exactly: write a file,
// observe the API server before and after kubelet.sync().

import { createHash, randomUUID } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { readLikeKubelet } from '../../src/manifest/parse.ts'
import { rfc3339Now, type FakeApiServer, type Json } from './fake-apiserver.ts'

export interface KubeletNode {
  name: string
  staticPodPath: string
}

export class FakeKubelet {
  private timer: NodeJS.Timeout | null = null

  constructor(
    private readonly api: FakeApiServer,
    readonly nodes: KubeletNode[],
  ) {}

  /** One pass over every node's directory, as the kubelet's periodic re-read. No-op while the API server is down. */
  async sync(): Promise<void> {
    for (const node of this.nodes) await this.syncNode(node)
  }

  /** Runs sync() every intervalMs until stop(). */
  start(intervalMs: number): void {
    this.stop()
    this.timer = setInterval(() => void this.sync().catch(() => undefined), intervalMs)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  private async syncNode(node: KubeletNode): Promise<void> {
    const wanted = new Map<string, Json>()
    for (const fileName of await readdir(node.staticPodPath).catch(() => [] as string[])) {
      if (fileName.startsWith('.')) continue
      const path = join(node.staticPodPath, fileName)
      if (!(await stat(path)).isFile()) continue
      const bytes = await readFile(path)
      const read = readLikeKubelet(bytes)
      if (!read.ok || !isPod(read.value)) continue
      const mirror = mirrorPodOf(read.value, node.name, path, bytes)
      wanted.set(`${mirror.metadata.namespace}/${mirror.metadata.name}`, mirror)
    }
    const existing = this.api.allPods().filter((p) => p.spec?.nodeName === node.name && p.metadata.annotations?.['kubernetes.io/config.mirror'] !== undefined)
    for (const pod of existing) {
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`
      const want = wanted.get(key)
      // A mirror pod of an old config hash is replaced, not updated: the pod itself was recreated.
      if (!want || want.metadata.annotations['kubernetes.io/config.hash'] !== pod.metadata.annotations['kubernetes.io/config.hash']) {
        this.api.deletePod(pod.metadata.namespace, pod.metadata.name)
      }
    }
    for (const [key, mirror] of wanted) {
      const [namespace, name] = key.split('/') as [string, string]
      if (!this.api.getPod(namespace, name)) this.api.putPod(mirror)
    }
  }
}

function isPod(value: unknown): value is Json {
  const v = value as Json | null
  return typeof v === 'object' && v !== null && v.kind === 'Pod' && typeof v.metadata?.name === 'string'
}

/** The mirror pod the kubelet posts for a static pod read from a file. */
export function mirrorPodOf(pod: Json, nodeName: string, path: string, bytes: Uint8Array): Json {
  // The kubelet's pod UID: a hash of the file's content, the node name and the path.
  const hash = createHash('md5').update(bytes).update(nodeName).update(path).digest('hex')
  const namespace = typeof pod.metadata.namespace === 'string' && pod.metadata.namespace !== '' ? pod.metadata.namespace : 'default'
  const now = rfc3339Now()
  const containers = (pod.spec?.containers ?? []) as Json[]
  const initContainers = (pod.spec?.initContainers ?? []) as Json[]
  return {
    metadata: {
      name: `${pod.metadata.name}-${nodeName.toLowerCase()}`,
      namespace,
      labels: pod.metadata.labels ?? undefined,
      annotations: {
        ...(pod.metadata.annotations ?? {}),
        'kubernetes.io/config.hash': hash,
        'kubernetes.io/config.mirror': hash,
        'kubernetes.io/config.seen': now,
        'kubernetes.io/config.source': 'file',
      },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid: randomUUID(), controller: true }],
    },
    spec: {
      ...pod.spec,
      nodeName,
      containers: containers.map(withContainerDefaults),
      ...(initContainers.length ? { initContainers: initContainers.map(withContainerDefaults) } : {}),
      restartPolicy: pod.spec?.restartPolicy ?? 'Always',
      terminationGracePeriodSeconds: pod.spec?.terminationGracePeriodSeconds ?? 30,
      dnsPolicy: pod.spec?.dnsPolicy ?? 'ClusterFirst',
      schedulerName: 'default-scheduler',
      securityContext: pod.spec?.securityContext ?? {},
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
      priority: pod.spec?.priority ?? 0,
      tolerations: [{ operator: 'Exists', effect: 'NoExecute' }],
    },
    status: {
      phase: 'Running',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
        type,
        status: 'True',
        lastProbeTime: null,
        lastTransitionTime: now,
      })),
      hostIP: '10.0.0.10',
      hostIPs: [{ ip: '10.0.0.10' }],
      podIP: '10.0.0.10',
      podIPs: [{ ip: '10.0.0.10' }],
      startTime: now,
      qosClass: 'BestEffort',
      containerStatuses: containers.map((c) => ({
        name: c.name,
        state: { running: { startedAt: now } },
        lastState: {},
        ready: true,
        restartCount: 0,
        // The runtime reports the image fully qualified, and the digest it resolved.
        image: qualifiedImage(String(c.image)),
        imageID: `${qualifiedImage(String(c.image)).replace(/:[^:/]+$/, '')}@sha256:${createHash('sha256').update(String(c.image)).digest('hex')}`,
        containerID: `containerd://${createHash('sha256').update(hash + c.name).digest('hex')}`,
        started: true,
      })),
      ...(initContainers.length
        ? {
            initContainerStatuses: initContainers.map((c) => ({
              name: c.name,
              state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now, containerID: `containerd://${randomUUID().replace(/-/g, '')}` } },
              lastState: {},
              ready: true,
              restartCount: 0,
              image: qualifiedImage(String(c.image)),
              imageID: '',
              started: false,
            })),
          }
        : {}),
    },
  }
}

function withContainerDefaults(c: Json): Json {
  return {
    ...c,
    resources: c.resources ?? {},
    terminationMessagePath: c.terminationMessagePath ?? '/dev/termination-log',
    terminationMessagePolicy: c.terminationMessagePolicy ?? 'File',
    imagePullPolicy: c.imagePullPolicy ?? (String(c.image).endsWith(':latest') || !String(c.image).includes(':') ? 'Always' : 'IfNotPresent'),
  }
}

/** nginx:1.27 → docker.io/library/nginx:1.27, as containerd reports it. */
function qualifiedImage(image: string): string {
  const withTag = /:[^/]+$/.test(image) || image.includes('@') ? image : `${image}:latest`
  const first = withTag.split('/')[0]!
  if (withTag.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return withTag
  return withTag.includes('/') ? `docker.io/${withTag}` : `docker.io/library/${withTag}`
}
