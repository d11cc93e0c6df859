// Readiness after a write: does the node run the NEW pod, with every container
// up? And the one wait-and-rollback that updateStaticPod(waitForReady) and
// applyStaticPodToNodes share, so that an update and a rollout judge a node alike.
//
// Two signals, each asked once per poll:
//   - the container runtime (crictl through the node agent: one round trip),
//     which works with the API server down. The kubelet recreates a static pod
//     whenever its manifest changes, so the new pod is a sandbox whose id
//     differs from the one before the write; it is up when that sandbox is
//     READY and every container of the manifest is RUNNING with the manifest's image;
//   - the mirror pod (API server, when it answers): the kubelet posts a new one
//     with a new kubernetes.io/config.hash; it is up when Ready and every
//     container ready. This one knows readiness probes, which crictl does not:
//     a new mirror pod that is not Ready holds back what the runtime says.
// A container of the new pod restarting CRASH_LOOP_RESTARTS times fails the
// wait at once: waiting out the timeout would only delay the rollback.

import type { Logger } from 'pino'
import { isMirrorPod, mirrorPodView, type MirrorPodView } from '../cluster/mirror-pods.ts'
import { isServiceError, ServiceError, type UserError } from '../errors.ts'
import { mirrorPodName } from '../manifest/names.ts'
import { parseManifest } from '../manifest/parse.ts'
import { containerSpecs } from '../manifest/pod-fields.ts'
import type { ContainerSpec } from '../manifest/types.ts'
import type { AgentProvider } from '../agents/registry.ts'
import type { NodeRecord, PodRuntimeState } from '../domain.ts'
import { podKeyString } from '../domain.ts'
import type { Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { ClusterService } from './cluster.ts'
import type { StaticPodService } from './static-pods.ts'
import type { StaticPodView } from './static-pod-view.ts'

/** A container of the new pod restarted this often: it crash-loops. */
export const CRASH_LOOP_RESTARTS = 3
/** readyTimeoutSeconds above this is refused: a wait that long is a stuck rollout. */
export const MAX_READY_TIMEOUT_SECONDS = 3600
/** The contract's default for readyTimeoutSeconds. */
export const DEFAULT_READY_TIMEOUT_SECONDS = 120
const FIRST_POLL_MS = 500
const MAX_POLL_MS = 2000
const POLL_BACKOFF = 1.5

/** What ran before the write. undefined: that signal could not be asked then (it is not used afterwards). */
export interface PodBaseline {
  /** The sandbox the runtime ran for the pod; null: none. */
  sandboxId: string | null | undefined
  /** The mirror pod's kubernetes.io/config.hash; null: no mirror pod. */
  mirrorConfigHash: string | null | undefined
}

/** One signal's answer at one poll. not-ready: the mirror pod shows the new pod, and it is not Ready (a probe fails). */
export interface SignalReading {
  verdict: 'ready' | 'crash-loop' | 'waiting' | 'not-ready' | 'unknown'
  detail: string
}

export type ReadinessVerdict =
  | { ready: true; detail: string; waitedMs: number }
  | { ready: false; crashLoop: boolean; detail: string; waitedMs: number }

/** The parts of the static pod service a rollback goes through (its write path, audited). */
export type RollbackWriter = Pick<StaticPodService, 'histories' | 'rollbackStaticPod' | 'deleteStaticPod'>

export interface SettleRequest {
  node: NodeRecord
  /** The pod as written. */
  written: StaticPodView
  /** The hash of the manifest before the write; null: there was none. */
  previousHash: string | null
  baseline: PodBaseline
  timeoutSeconds: number
  autoRollback: boolean
  actor: Actor
  /** The mutation the wait belongs to, recorded as the action of its audit event. */
  action: string
  /** Says which rollout a log line or audit message is about, e.g. "rollout 0f3c…". */
  context?: string
  writer: RollbackWriter
  /** Told when the node starts waiting or rolling back, and of each poll's answer. */
  onProgress?: (phase: 'WAITING_FOR_READY' | 'ROLLING_BACK', detail: string) => void
}

export type SettleOutcome =
  | { status: 'READY'; staticPod: StaticPodView; detail: string }
  | { status: 'FAILED' | 'ROLLED_BACK'; staticPod: StaticPodView | null; error: UserError }

export interface ReadinessOptions {
  agents: AgentProvider
  cluster: ClusterService
  audit: AuditService
  log: Logger
}

export class ReadinessService {
  constructor(private readonly o: ReadinessOptions) {}

  /** readyTimeoutSeconds, checked: VALIDATION_FAILED on the field when out of range. */
  static timeoutOf(seconds: number | null | undefined, fallback: number): number {
    const value = seconds ?? fallback
    if (!Number.isInteger(value) || value < 0 || value > MAX_READY_TIMEOUT_SECONDS) {
      throw new ServiceError(
        'VALIDATION_FAILED',
        `readyTimeoutSeconds must be an integer from 0 (do not wait) to ${MAX_READY_TIMEOUT_SECONDS}; got ${value}`,
        ['readyTimeoutSeconds'],
      )
    }
    return value
  }

  /**
   * What the node runs for the pod before a write: taken before the write so
   * that the wait can tell the new pod from the old one. Never throws: a
   * signal that cannot be asked now is left out of the wait.
   */
  async baseline(node: NodeRecord, pod: { namespace: string; name: string }): Promise<PodBaseline> {
    const [runtime, mirror] = await Promise.all([this.runtimeOf(node, pod), this.mirrorOf(node, pod)])
    return {
      sandboxId: runtime.available ? (runtime.pod?.sandboxId ?? null) : undefined,
      mirrorConfigHash: mirror.available ? (mirror.mirror?.configHash ?? null) : undefined,
    }
  }

  /** Polls both signals (500 ms, growing to 2 s apart) until the new pod is up, crash-loops, or timeoutSeconds pass. */
  async waitUntilReady(
    node: NodeRecord,
    pod: { namespace: string; name: string; manifest: string },
    baseline: PodBaseline,
    timeoutSeconds: number,
    onPoll?: (detail: string) => void,
  ): Promise<ReadinessVerdict> {
    const expected = containerSpecs(parseManifest(pod.manifest).object).filter((c) => !c.init)
    const started = performance.now()
    const deadline = started + timeoutSeconds * 1000
    const maxPolls = Math.ceil((timeoutSeconds * 1000) / FIRST_POLL_MS) + 2
    let interval = FIRST_POLL_MS
    let detail = 'not asked yet'
    for (let poll = 0; poll < maxPolls; poll++) {
      await sleep(Math.max(0, Math.min(interval, deadline - performance.now())))
      const [runtime, mirror] = await Promise.all([this.runtimeOf(node, pod), this.mirrorOf(node, pod)])
      const runtimeReading: SignalReading = runtime.available ? runtimeSignal(runtime.pod, expected, baseline.sandboxId) : { verdict: 'unknown', detail: runtime.reason }
      const mirrorReading: SignalReading = mirror.available ? mirrorSignal(mirror.mirror, expected, baseline.mirrorConfigHash) : { verdict: 'unknown', detail: mirror.reason }
      const decision = decideReadiness(runtimeReading, mirrorReading)
      const waitedMs = Math.round(performance.now() - started)
      detail = decision.detail
      onPoll?.(detail)
      if (decision.verdict === 'ready') return { ready: true, detail, waitedMs }
      if (decision.verdict === 'crash-loop') return { ready: false, crashLoop: true, detail, waitedMs }
      if (performance.now() >= deadline) break
      interval = Math.min(interval * POLL_BACKOFF, MAX_POLL_MS)
    }
    return { ready: false, crashLoop: false, detail, waitedMs: Math.round(performance.now() - started) }
  }

  /**
   * Waits for the written pod; when it does not come up: FAILED, or, with
   * autoRollback, the previous bytes written back through the service's write
   * path (a ROLLBACK revision, byte for byte what was there; a pod that did not
   * exist before is deleted) and ROLLED_BACK. The wait's outcome is an audit
   * event of its own; the rollback records its own (rollbackStaticPod or deleteStaticPod).
   */
  async settle(req: SettleRequest): Promise<SettleOutcome> {
    const { node, written } = req
    const target = `${written.namespace}/${written.name}`
    const prefix = req.context ? `${req.context}: ` : ''
    req.onProgress?.('WAITING_FOR_READY', `waiting up to ${req.timeoutSeconds} s for the new pod`)
    const verdict = await this.waitUntilReady(node, written, req.baseline, req.timeoutSeconds, (detail) => req.onProgress?.('WAITING_FOR_READY', detail))
    const seconds = (verdict.waitedMs / 1000).toFixed(1)
    const message = verdict.ready
      ? `${prefix}ready after ${seconds} s (${verdict.detail})`
      : verdict.crashLoop
        ? `${prefix}the new pod crash-loops after ${seconds} s: ${verdict.detail}`
        : `${prefix}the new pod was not ready within ${req.timeoutSeconds} s: ${verdict.detail}`
    await this.o.audit.record({
      actor: req.actor.name,
      action: req.action,
      node: node.name,
      target,
      fromHash: req.previousHash,
      toHash: written.hash,
      result: verdict.ready ? 'OK' : 'TIMEOUT',
      message,
      dryRun: false,
    })
    if (verdict.ready) return { status: 'READY', staticPod: written, detail: message }

    const failure = `node ${node.name}: ${message.slice(prefix.length)}`
    if (!req.autoRollback) return { status: 'FAILED', staticPod: written, error: { code: 'TIMEOUT', message: `${failure}; left in place (autoRollback is off)`, field: null } }
    req.onProgress?.('ROLLING_BACK', req.previousHash ? `writing back the previous manifest (sha256 ${req.previousHash})` : 'deleting the new manifest (there was none before)')
    this.o.log.info({ node: node.name, target, context: req.context }, `${prefix}rolling back on node ${node.name}`)
    const rollback = await this.rollBack(req)
    if (rollback.problem !== null) {
      return { status: 'FAILED', staticPod: written, error: { code: 'TIMEOUT', message: `${failure}; the rollback failed: ${rollback.problem}`, field: null } }
    }
    const undone = req.previousHash ? `the previous manifest (sha256 ${req.previousHash}) was written back` : 'the new manifest was deleted (there was none before)'
    return { status: 'ROLLED_BACK', staticPod: rollback.staticPod, error: { code: 'TIMEOUT', message: `${failure}; ${undone}`, field: null } }
  }

  /** Only what this wait wrote is undone: a manifest changed since (expectedHash) is left alone. */
  private async rollBack(req: SettleRequest): Promise<{ staticPod: StaticPodView | null; problem: string | null }> {
    const { node, written, actor, writer } = req
    const ref = { node: node.name, namespace: written.namespace, name: written.name, expectedHash: written.hash }
    if (req.previousHash === null) {
      const deleted = await writer.deleteStaticPod(ref, actor)
      const error = deleted.userErrors[0]
      return { staticPod: null, problem: error ? `${error.code}: ${error.message}` : null }
    }
    const key = { node: node.name, namespace: written.namespace, name: written.name }
    const history = (await writer.histories([key], 20)).get(podKeyString(key)) ?? []
    const previous = history.find((r) => r.revision < written.revision && r.hash === req.previousHash && r.action !== 'DELETE')
    if (!previous) return { staticPod: null, problem: `the previous manifest (sha256 ${req.previousHash}) is not in the store's recent history` }
    const restored = await writer.rollbackStaticPod({ ...ref, revision: previous.revision }, actor)
    const error = restored.userErrors[0]
    if (error) return { staticPod: null, problem: `${error.code}: ${error.message}` }
    if (restored.staticPod?.hash !== req.previousHash) {
      return { staticPod: restored.staticPod, problem: `the node holds sha256 ${restored.staticPod?.hash ?? 'nothing'} after the rollback, not ${req.previousHash}` }
    }
    return { staticPod: restored.staticPod, problem: null }
  }

  private async runtimeOf(
    node: NodeRecord,
    pod: { namespace: string; name: string },
  ): Promise<{ available: true; pod: PodRuntimeState | undefined } | { available: false; reason: string }> {
    try {
      const report = await (await this.o.agents.agentFor(node)).runtimeStatus()
      if (!report.available) return { available: false, reason: `container runtime: ${report.reason}` }
      return { available: true, pod: report.pods.find((p) => p.namespace === pod.namespace && p.name === pod.name) }
    } catch (err) {
      return { available: false, reason: `container runtime: ${errorText(err)}` }
    }
  }

  private async mirrorOf(
    node: NodeRecord,
    pod: { namespace: string; name: string },
  ): Promise<{ available: true; mirror: MirrorPodView | null } | { available: false; reason: string }> {
    if (!this.o.cluster.configured) return { available: false, reason: 'API server: not configured' }
    try {
      const found = await this.o.cluster.call((api) => api.readPod(pod.namespace, mirrorPodName(pod.name, node.name)))
      return { available: true, mirror: isMirrorPod(found) ? mirrorPodView(found) : null }
    } catch (err) {
      if (isServiceError(err) && err.code === 'NOT_FOUND') return { available: true, mirror: null }
      return { available: false, reason: `API server: ${errorText(err)}` }
    }
  }
}

// ------------------------------------------------------------------ the signals (pure)

/** The runtime's answer: the new sandbox READY, every container RUNNING with its image. */
export function runtimeSignal(pod: PodRuntimeState | undefined, expected: ContainerSpec[], baselineSandboxId: string | null | undefined): SignalReading {
  if (baselineSandboxId === undefined) return { verdict: 'unknown', detail: 'container runtime: could not be asked before the write, so the new pod cannot be told from the old' }
  if (!pod) return { verdict: 'waiting', detail: 'container runtime: no sandbox for the pod yet' }
  if (pod.sandboxId === undefined) return { verdict: 'unknown', detail: 'container runtime: reports no sandbox id' }
  if (pod.sandboxId === baselineSandboxId) return { verdict: 'waiting', detail: 'container runtime: still the sandbox from before the write' }
  const looping = crashLooping(pod.containers, expected)
  if (looping) return { verdict: 'crash-loop', detail: `container runtime: ${looping}` }
  if (pod.state !== 'READY') return { verdict: 'waiting', detail: `container runtime: new sandbox ${pod.state}` }
  const problems = expected.flatMap((spec) => {
    const container = pod.containers.find((c) => c.name === spec.name)
    if (!container) return [`container ${spec.name} not created yet`]
    if (container.state !== 'RUNNING') return [`container ${spec.name} ${container.state}`]
    if (!sameImage(spec.image, container.image)) return [`container ${spec.name} runs ${container.image}, not ${spec.image}`]
    return []
  })
  if (problems.length > 0) return { verdict: 'waiting', detail: `container runtime: ${problems.join(', ')}` }
  return { verdict: 'ready', detail: 'container runtime: new sandbox READY, every container RUNNING' }
}

/** The API server's answer: a mirror pod of a new config hash, Ready, every container ready. */
export function mirrorSignal(mirror: MirrorPodView | null, expected: ContainerSpec[], baselineConfigHash: string | null | undefined): SignalReading {
  if (baselineConfigHash === undefined) return { verdict: 'unknown', detail: 'API server: could not be asked before the write' }
  if (!mirror) return { verdict: 'waiting', detail: 'API server: no mirror pod yet' }
  if (mirror.configHash === baselineConfigHash) return { verdict: 'waiting', detail: 'API server: the mirror pod still shows the previous manifest' }
  const looping = crashLooping(mirror.containers, expected)
  if (looping) return { verdict: 'crash-loop', detail: `API server: ${looping}` }
  const unready = expected.filter((spec) => mirror.containers.find((c) => c.name === spec.name)?.ready !== true).map((c) => c.name)
  if (mirror.ready !== true || unready.length > 0) {
    return { verdict: 'not-ready', detail: `API server: mirror pod not Ready${unready.length ? ` (containers ${unready.join(', ')} not ready)` : ''}` }
  }
  return { verdict: 'ready', detail: 'API server: mirror pod Ready' }
}

/** Either signal crash-looping fails; a Ready mirror pod, or a ready runtime the mirror pod does not contradict, is ready. */
export function decideReadiness(runtime: SignalReading, mirror: SignalReading): SignalReading {
  const looping = [runtime, mirror].find((s) => s.verdict === 'crash-loop')
  if (looping) return looping
  if (mirror.verdict === 'ready') return mirror
  if (runtime.verdict === 'ready' && mirror.verdict !== 'not-ready') return runtime
  return { verdict: 'waiting', detail: `${runtime.detail}; ${mirror.detail}` }
}

function crashLooping(containers: Array<{ name: string; restartCount: number | null }>, expected: ContainerSpec[]): string | null {
  const looping = containers.find((c) => expected.some((s) => s.name === c.name) && (c.restartCount ?? 0) >= CRASH_LOOP_RESTARTS)
  return looping ? `container ${looping.name} restarted ${looping.restartCount} times` : null
}

/**
 * Whether the runtime runs the image the manifest names. The runtime reports
 * it fully qualified (docker.io/library/nginx:1.27 for nginx:1.27), or only as
 * an image id (sha256:...), which cannot be compared and is taken as a match.
 */
export function sameImage(manifestImage: string, reported: string | null): boolean {
  if (reported === null || /^(sha256:)?[0-9a-f]{64}$/.test(reported)) return true
  const a = normalizeImage(manifestImage)
  const b = normalizeImage(reported)
  if (a.name !== b.name) return false
  if (a.digest && b.digest) return a.digest === b.digest
  // A digest on one side only cannot be compared with the other's tag here.
  if ((a.digest === null) !== (b.digest === null)) return true
  return a.tag === b.tag
}

/** Docker's reference rules: no registry is docker.io, no path is library/, no tag (nor digest) is latest. */
export function normalizeImage(reference: string): { name: string; tag: string | null; digest: string | null } {
  const [withTag = '', digest = null] = reference.trim().split('@', 2)
  const lastSlash = withTag.lastIndexOf('/')
  const colon = withTag.lastIndexOf(':')
  let name = colon > lastSlash ? withTag.slice(0, colon) : withTag
  let tag = colon > lastSlash ? withTag.slice(colon + 1) : null
  const first = name.split('/')[0] ?? ''
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')
  if (!hasRegistry) name = `docker.io/${name.includes('/') ? name : `library/${name}`}`
  if (name.startsWith('index.docker.io/')) name = `docker.io/${name.slice('index.docker.io/'.length)}`
  if (tag === null && digest === null) tag = 'latest'
  return { name, tag, digest }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
