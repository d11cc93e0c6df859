// Asks a node and the API server whether the new pod of a write is up:
// the baseline before the write (which sandbox and mirror pod ran), then polls
// of both signals until the new pod is ready, crash-loops, or time runs out.
// What the answers mean is readiness-signals.ts (pure); what to do when the
// pod does not come up is settled-write.ts.

import { isMirrorPod, mirrorPodView, type MirrorPodView } from '../cluster/mirror-pods.ts'
import type { AgentProvider } from '../agents/registry.ts'
import type { NodeRecord, PodRuntimeState } from '../domain.ts'
import { errorText, isServiceError } from '../errors.ts'
import { mirrorPodName } from '../manifest/names.ts'
import { parseManifest } from '../manifest/parse.ts'
import { containerSpecs } from '../manifest/pod-fields.ts'
import type { ClusterService } from './cluster.ts'
import { decideReadiness, mirrorSignal, runtimeSignal, type PodBaseline, type SignalReading } from './readiness-signals.ts'

const FIRST_POLL_MS = 500
const MAX_POLL_MS = 2000
const POLL_BACKOFF = 1.5

export type ReadinessVerdict =
  | { ready: true; detail: string; waitedMs: number }
  | { ready: false; crashLoop: boolean; detail: string; waitedMs: number }

export interface ReadinessOptions {
  agents: AgentProvider
  cluster: ClusterService
}

export class ReadinessService {
  constructor(private readonly o: ReadinessOptions) {}

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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
