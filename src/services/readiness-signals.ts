// Readiness signals, pure: given what the container runtime and the API server
// report about a pod, is the NEW pod (the one after a write) up? No I/O here:
// readiness.ts asks the node and the API server, settled-write.ts decides
// what to do with the answer.
//
// - The container runtime (crictl through the node agent) works with the API
//   server down. The kubelet recreates a static pod whenever its manifest
//   changes, so the new pod is a sandbox whose id differs from the one before
//   the write; it is up when that sandbox is READY and every container of the
//   manifest is RUNNING with the manifest's image.
// - The mirror pod (API server, when it answers): the kubelet posts a new one
//   with a new kubernetes.io/config.hash; it is up when Ready and every
//   container ready. This one knows readiness probes, which crictl does not:
//   a new mirror pod that is not Ready holds back what the runtime says.
// A container of the new pod restarting CRASH_LOOP_RESTARTS times fails the
// wait at once: waiting out the timeout would only delay the rollback.

import type { MirrorPodView } from '../cluster/mirror-pods.ts'
// The one crash-loop threshold (diagnosis's, and the CRASH_LOOP event's).
import { CRASH_LOOP_RESTARTS } from '../diagnosis/problems.ts'
import type { PodRuntimeState } from '../domain.ts'
import { ServiceError } from '../errors.ts'
import type { ContainerSpec } from '../manifest/types.ts'

/** readyTimeoutSeconds above this is refused: a wait that long is a stuck rollout. */
const MAX_READY_TIMEOUT_SECONDS = 3600
/** The contract's default for readyTimeoutSeconds. */
export const DEFAULT_READY_TIMEOUT_SECONDS = 120

/** readyTimeoutSeconds, checked: VALIDATION_FAILED on the field when out of range. */
export function readyTimeoutOf(seconds: number | null | undefined): number {
  const value = seconds ?? DEFAULT_READY_TIMEOUT_SECONDS
  if (!Number.isInteger(value) || value < 0 || value > MAX_READY_TIMEOUT_SECONDS) {
    throw new ServiceError(
      'VALIDATION_FAILED',
      `readyTimeoutSeconds must be an integer from 0 (do not wait) to ${MAX_READY_TIMEOUT_SECONDS}; got ${value}`,
      ['readyTimeoutSeconds'],
    )
  }
  return value
}

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
