// A stand-in for the kubelet and container runtime of test nodes, as far as
// crictl (and, optionally, the API server) sees them: no kubelet or runtime can
// run here. Like a kubelet, it watches each node's staticPodPath (a pass every
// intervalMs) and runs every pod defined there; it writes what the runtime then
// runs as the crictl document the node's fake crictl serves (fake-crictl.mjs,
// FAKE_CRICTL_STATE), atomically, so a crictl call never reads half of it.
//
//   - A manifest whose bytes changed gets a new sandbox (new id, created now);
//     the old sandbox stays listed NOTREADY with its containers EXITED, as
//     crictl shows it until garbage collection.
//   - Images are reported fully qualified (docker.io/library/nginx:1.27 for
//     nginx:1.27) with no userSpecifiedImage, as older crictl prints them.
//   - Per node (and pod) behaviour, fixed when the sandbox is created:
//       ready        containers CREATED for readyAfterMs, then RUNNING;
//       never-ready  sandbox READY, containers stay CREATED (an image that never pulls);
//       crash-loop   containers EXITED, restartCount growing every crashEveryMs;
//                    each attempt exits with exit code 1 (reason Error, as
//                    containerd words it), and the attempt before the current
//                    one stays listed EXITED too, as the kubelet's garbage
//                    collection keeps it (crictl inspect answers for both).
//   - Log lines a test chooses (setLogs) are each attempt's log: served by
//     `crictl logs`, and, for a node with a podLogDir, written where the
//     kubelet keeps them, <podLogDir>/<namespace>_<pod>-<node>_<uid>/<container>/<attempt>.log,
//     in the CRI log format (see crictl-fixture.ts criLogRecord).
//
// With an API server stand-in, it also keeps the mirror pods (as FakeKubelet
// does) with a status that tells the same story: Ready only when running.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readLikeKubelet } from '../../src/manifest/parse.ts'
import { criLogRecord, type CrictlContainer, type CrictlSandbox } from './crictl-fixture.ts'
import type { FakeApiServer, Json } from './fake-apiserver.ts'
import { mirrorPodOf } from './fake-kubelet.ts'

export type PodBehaviour = 'ready' | 'never-ready' | 'crash-loop'

export interface RuntimeNode {
  name: string
  staticPodPath: string
  /** The file the node's fake crictl serves (FAKE_CRICTL_STATE). */
  crictlStatePath: string
  /** Where this node's kubelet keeps container logs (its podLogsDir): a directory the test owns. None: no log files written. */
  podLogDir?: string
}

export interface FakeRuntimeOptions {
  /** Keeps mirror pods there too. */
  api?: FakeApiServer
  /** Default: every pod ready. */
  behaviour?: (node: string, pod: string) => PodBehaviour
  /** How long a new pod's containers are CREATED before they run (ready pods). */
  readyAfterMs?: number
  /** A crash-looping container restarts this often. */
  crashEveryMs?: number
  /** The exit code of a crash-looping container's every attempt; default 1. */
  crashExitCode?: number
}

/** Log lines of a container: the same for each of its attempts, stamped from the attempt's start. */
interface ContainerLog {
  lines: string[]
  stream: 'stdout' | 'stderr'
}

interface RunningPod {
  namespace: string
  name: string
  fileKey: string
  sandboxId: string
  createdAt: number
  behaviour: PodBehaviour
  containers: Array<{ name: string; image: string }>
  /** The manifest as read, for the mirror pod. */
  object: Json
  path: string
  bytes: Buffer
}

interface NodeRuntime {
  node: RuntimeNode
  pods: Map<string, RunningPod>
  /** Sandboxes replaced by a newer one, listed NOTREADY. */
  retired: RunningPod[]
}

export class FakeRuntime {
  private readonly nodes: NodeRuntime[]
  private readonly overrides = new Map<string, PodBehaviour>()
  /** By `<node>/<container name>`. */
  private readonly logs = new Map<string, ContainerLog>()
  /** The log files last written, by path: rewritten only when they change. */
  private readonly logFiles = new Map<string, string>()
  private timer: NodeJS.Timeout | null = null
  private syncing: Promise<void> | null = null

  constructor(
    nodes: RuntimeNode[],
    private readonly options: FakeRuntimeOptions = {},
  ) {
    this.nodes = nodes.map((node) => ({ node, pods: new Map(), retired: [] }))
  }

  /** From now on, pods (re)created on this node behave so. */
  behave(node: string, behaviour: PodBehaviour): void {
    this.overrides.set(node, behaviour)
  }

  /**
   * From now on, every attempt of the containers named container on node
   * logs these lines (each a record of stream, stamped a microsecond apart
   * from the attempt's start), until setLogs is called again.
   */
  setLogs(node: string, container: string, lines: string[], stream: 'stdout' | 'stderr' = 'stderr'): void {
    this.logs.set(`${node}/${container}`, { lines: [...lines], stream })
  }

  /** Runs sync() every intervalMs until stop(). */
  start(intervalMs = 100): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = setInterval(() => void this.sync().catch(() => undefined), intervalMs)
  }

  /** Stops the passes; resolves once a pass in progress has finished writing. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.syncing?.catch(() => undefined)
  }

  /** One pass over every node: what the kubelet would run now, written for crictl. One pass at a time. */
  async sync(): Promise<void> {
    this.syncing ??= (async () => {
      try {
        for (const node of this.nodes) await this.syncNode(node)
      } finally {
        this.syncing = null
      }
    })()
    return this.syncing
  }

  private behaviourOf(node: string, pod: string): PodBehaviour {
    return this.overrides.get(node) ?? this.options.behaviour?.(node, pod) ?? 'ready'
  }

  private async syncNode(runtime: NodeRuntime): Promise<void> {
    const { node } = runtime
    const seen = new Set<string>()
    for (const fileName of (await readdir(node.staticPodPath).catch(() => [] as string[])).sort()) {
      if (fileName.startsWith('.')) continue
      const path = join(node.staticPodPath, fileName)
      if (!(await stat(path).catch(() => null))?.isFile()) continue
      const bytes = await readFile(path).catch(() => null)
      if (!bytes) continue
      const read = readLikeKubelet(bytes)
      const object = read.ok ? (read.value as Json) : null
      if (!object || object.kind !== 'Pod' || typeof object.metadata?.name !== 'string') continue
      const namespace = typeof object.metadata.namespace === 'string' && object.metadata.namespace !== '' ? object.metadata.namespace : 'default'
      const key = `${namespace}/${object.metadata.name}`
      seen.add(key)
      const fileKey = createHash('sha256').update(bytes).update(path).digest('hex')
      const running = runtime.pods.get(key)
      if (running?.fileKey === fileKey) continue
      if (running) runtime.retired = [running] // crictl keeps the previous sandbox listed for a while
      runtime.pods.set(key, {
        namespace,
        name: object.metadata.name,
        fileKey,
        sandboxId: randomBytes(32).toString('hex'),
        createdAt: Date.now(),
        behaviour: this.behaviourOf(node.name, object.metadata.name),
        containers: ((object.spec?.containers ?? []) as Json[]).map((c) => ({ name: String(c.name), image: String(c.image) })),
        object,
        path,
        bytes,
      })
    }
    for (const key of [...runtime.pods.keys()]) if (!seen.has(key)) runtime.pods.delete(key)
    await this.writeCrictlState(runtime)
    if (this.options.api) this.syncMirrorPods(runtime, this.options.api)
  }

  private async writeCrictlState(runtime: NodeRuntime): Promise<void> {
    const sandboxes: CrictlSandbox[] = []
    const containers: CrictlContainer[] = []
    const logFiles = new Map<string, string>()
    const now = Date.now()
    for (const pod of runtime.retired) {
      const sandbox = sandboxOf(runtime.node.name, pod, 'SANDBOX_NOTREADY')
      sandboxes.push(sandbox)
      containers.push(...pod.containers.map((c) => containerOf(sandbox, pod, c, 'CONTAINER_EXITED', 0)))
    }
    for (const pod of runtime.pods.values()) {
      const sandbox = sandboxOf(runtime.node.name, pod, 'SANDBOX_READY')
      sandboxes.push(sandbox)
      const { state, restarts } = this.containerState(pod, now)
      for (const c of pod.containers) {
        const log = this.logs.get(`${runtime.node.name}/${c.name}`)
        const attempts = pod.behaviour === 'crash-loop' && restarts > 0 ? [restarts - 1, restarts] : [restarts]
        for (const attempt of attempts) {
          const container = containerOf(sandbox, pod, c, attempt === restarts ? state : 'CONTAINER_EXITED', attempt)
          const startedMs = pod.createdAt + attempt * this.crashEvery()
          if (pod.behaviour === 'crash-loop') {
            // Each attempt ran half the restart interval and exited with crashExitCode (containerd: reason Error for non-zero).
            const exitCode = this.options.crashExitCode ?? 1
            Object.assign(container, { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: isoNanos(startedMs, 0), finishedAt: isoNanos(startedMs + this.crashEvery() / 2, 0) })
          }
          const started = container.state !== 'CONTAINER_CREATED'
          if (log && started) {
            container.log = log.lines.map((line, i) => criLogRecord(isoNanos(startedMs, i), log.stream, line))
            if (runtime.node.podLogDir) {
              const path = join(runtime.node.podLogDir, `${pod.namespace}_${sandbox.metadata.name}_${sandbox.metadata.uid}`, c.name, `${attempt}.log`)
              logFiles.set(path, container.log.map((record) => `${record}\n`).join(''))
            }
          }
          containers.push(container)
        }
      }
    }
    const path = runtime.node.crictlStatePath
    const temp = `${path}.${process.pid}.tmp`
    await writeFile(temp, JSON.stringify({ sandboxes, containers }))
    await rename(temp, path)
    for (const [file, content] of logFiles) {
      if (this.logFiles.get(file) === content) continue
      await mkdir(join(file, '..'), { recursive: true })
      await writeFile(file, content)
      this.logFiles.set(file, content)
    }
  }

  private crashEvery(): number {
    return this.options.crashEveryMs ?? 200
  }

  private containerState(pod: RunningPod, now: number): { state: string; restarts: number } {
    const age = now - pod.createdAt
    switch (pod.behaviour) {
      case 'ready':
        return { state: age >= (this.options.readyAfterMs ?? 0) ? 'CONTAINER_RUNNING' : 'CONTAINER_CREATED', restarts: 0 }
      case 'never-ready':
        return { state: 'CONTAINER_CREATED', restarts: 0 }
      case 'crash-loop':
        return { state: 'CONTAINER_EXITED', restarts: Math.min(50, Math.floor(age / this.crashEvery())) }
    }
  }

  private syncMirrorPods(runtime: NodeRuntime, api: FakeApiServer): void {
    const nodeName = runtime.node.name
    const wanted = new Map<string, Json>()
    for (const pod of runtime.pods.values()) {
      const mirror = mirrorPodOf(pod.object, nodeName, pod.path, pod.bytes)
      const { state, restarts } = this.containerState(pod, Date.now())
      if (state !== 'CONTAINER_RUNNING') notRunning(mirror, state, restarts)
      wanted.set(`${mirror.metadata.namespace}/${mirror.metadata.name}`, mirror)
    }
    for (const existing of api.allPods().filter((p) => p.spec?.nodeName === nodeName && p.metadata.annotations?.['kubernetes.io/config.mirror'] !== undefined)) {
      const want = wanted.get(`${existing.metadata.namespace}/${existing.metadata.name}`)
      // A new config hash is a new pod: the kubelet deletes the old mirror pod and posts a new one.
      if (!want || want.metadata.annotations['kubernetes.io/config.hash'] !== existing.metadata.annotations['kubernetes.io/config.hash']) {
        api.deletePod(existing.metadata.namespace, existing.metadata.name)
      }
    }
    for (const mirror of wanted.values()) {
      const existing = api.getPod(mirror.metadata.namespace, mirror.metadata.name)
      if (!existing || JSON.stringify(existing.status.containerStatuses.map((c: Json) => [c.ready, c.restartCount])) !== JSON.stringify(mirror.status.containerStatuses.map((c: Json) => [c.ready, c.restartCount]))) {
        api.putPod(existing ? { ...existing, status: mirror.status } : mirror)
      }
    }
  }
}

/** The mirror pod's status for a pod whose containers do not run (yet). */
function notRunning(mirror: Json, state: string, restarts: number): void {
  mirror.status.conditions = mirror.status.conditions.map((c: Json) => (c.type === 'Ready' || c.type === 'ContainersReady' ? { ...c, status: 'False' } : c))
  mirror.status.containerStatuses = mirror.status.containerStatuses.map((c: Json) => ({
    ...c,
    ready: false,
    started: false,
    restartCount: restarts,
    state: state === 'CONTAINER_EXITED' ? { waiting: { reason: 'CrashLoopBackOff' } } : { waiting: { reason: 'ContainerCreating' } },
  }))
}

function sandboxOf(nodeName: string, pod: RunningPod, state: CrictlSandbox['state']): CrictlSandbox {
  const podName = `${pod.name}-${nodeName.toLowerCase()}`
  const uid = pod.fileKey.slice(0, 32)
  return {
    id: pod.sandboxId,
    metadata: { name: podName, uid, namespace: pod.namespace, attempt: 0 },
    state,
    createdAt: `${BigInt(pod.createdAt) * 1_000_000n}`,
    labels: { 'io.kubernetes.pod.name': podName, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': uid },
    annotations: { 'kubernetes.io/config.hash': uid, 'kubernetes.io/config.seen': new Date(pod.createdAt).toISOString(), 'kubernetes.io/config.source': 'file' },
    runtimeHandler: '',
  }
}

function containerOf(sandbox: CrictlSandbox, pod: RunningPod, c: { name: string; image: string }, state: string, restarts: number): CrictlContainer {
  const imageId = `sha256:${createHash('sha256').update(c.image).digest('hex')}`
  return {
    id: createHash('sha256').update(`${pod.sandboxId} ${c.name} ${restarts}`).digest('hex'),
    podSandboxId: sandbox.id,
    metadata: { name: c.name, attempt: restarts },
    image: { image: qualifiedImage(c.image), annotations: {}, runtimeHandler: '' },
    imageRef: imageId,
    state,
    createdAt: `${BigInt(pod.createdAt + restarts) * 1_000_000n}`,
    labels: {
      'io.kubernetes.container.name': c.name,
      'io.kubernetes.pod.name': sandbox.metadata.name,
      'io.kubernetes.pod.namespace': pod.namespace,
      'io.kubernetes.pod.uid': sandbox.metadata.uid,
    },
    annotations: { 'io.kubernetes.container.restartCount': String(restarts) },
  }
}

/** An ISO 8601 time with nanoseconds, as a runtime stamps log records: ms since the epoch, plus micros microseconds. */
function isoNanos(ms: number, micros: number): string {
  const ns = BigInt(Math.floor(ms)) * 1_000_000n + BigInt(micros) * 1000n
  const seconds = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19)
  return `${seconds}.${String(ns % 1_000_000_000n).padStart(9, '0')}Z`
}

/** nginx:1.27 → docker.io/library/nginx:1.27, as containerd reports it. */
function qualifiedImage(image: string): string {
  const withTag = /:[^/]+$/.test(image) || image.includes('@') ? image : `${image}:latest`
  const first = withTag.split('/')[0] as string
  if (withTag.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return withTag
  return withTag.includes('/') ? `docker.io/${withTag}` : `docker.io/library/${withTag}`
}
