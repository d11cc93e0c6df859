// Why a static pod is not running, from the evidence read on its node: the
// one place that turns exit codes, restart counts, log lines, journal lines,
// file times, certificates and findings into Problems, most likely cause
// first. Pure: services/diagnosis.ts gathers the evidence (through the node
// agent, so it works with the API server down) and hands it here.
//
// The order is a judgement: a cause before its symptoms. An expired
// certificate or an invalid manifest explains a crash loop or a pod that does
// not run; an image that cannot be pulled explains why nothing runs; the
// kubelet or the runtime being down explains everything but is checked on the
// node, not the pod; mirror pod drift matters only while the API server is up.

import type { ContainerRuntimeState } from '../domain.ts'
import { certificateFindings, type CertificateInfo } from './certificates.ts'

type Severity = 'CRITICAL' | 'WARNING' | 'INFO'

type ProblemCode =
  | 'MANIFEST_INVALID'
  | 'NOT_PICKED_UP'
  | 'NOT_RUNNING'
  | 'CRASH_LOOP'
  | 'IMAGE_PULL_FAILED'
  | 'CERTIFICATE_EXPIRED'
  | 'CERTIFICATE_EXPIRES_SOON'
  | 'KUBELET_UNHEALTHY'
  | 'RUNTIME_UNAVAILABLE'
  | 'MIRROR_MISSING'
  | 'MIRROR_OUTDATED'

export interface Problem {
  code: ProblemCode
  severity: Severity
  /** One sentence for a person or a chat channel. */
  message: string
  /** What it is based on: an exit code, log lines, a file and its notAfter, journal lines. */
  evidence: string[]
}

/** Most likely cause first (see the top of this file). */
const RANK: readonly ProblemCode[] = [
  'CERTIFICATE_EXPIRED',
  'MANIFEST_INVALID',
  'IMAGE_PULL_FAILED',
  'CRASH_LOOP',
  'KUBELET_UNHEALTHY',
  'RUNTIME_UNAVAILABLE',
  'NOT_PICKED_UP',
  'NOT_RUNNING',
  'CERTIFICATE_EXPIRES_SOON',
  'MIRROR_MISSING',
  'MIRROR_OUTDATED',
]

/**
 * The kubelet sees a changed file at once (inotify) and in any case at its
 * periodic resync (20 s, `--file-check-frequency` / fileCheckFrequency's
 * default in k8s.io/kubelet/config/v1beta1). Past that, a sandbox older than
 * the file means the new content was not taken up.
 */
const KUBELET_FILE_CHECK_SECONDS = 20
/** How long the kubelet may take to start a pod before "not running" is a problem rather than "starting". */
const POD_START_GRACE_SECONDS = 60
/** A container restarted this often keeps exiting (as readiness-signals.ts judges a rollout's new pod). */
export const CRASH_LOOP_RESTARTS = 3
/** Lines of evidence taken from a log or the journal. */
const EVIDENCE_LINES = 5

/** The kubelet's and the runtimes' words for an image that cannot be pulled (kubelet images/types.go, containerd, CRI-O). */
const IMAGE_PULL_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'RegistryUnavailable'])
const IMAGE_PULL_JOURNAL = /ErrImagePull|ImagePullBackOff|Failed to pull image|failed to pull and unpack image|pull access denied|failed to resolve reference|manifest unknown/i

export interface PodEvidence {
  node: string
  namespace: string
  name: string
  /** <name>-<node>: the name the runtime, the journal and the API server know it by. */
  mirrorPodName: string
  fileName: string
  /** When the file last changed on the node (its modification time); null when unknown. */
  fileChangedAt: string | null
  /** The node's findings about this file (lint). */
  findings: Array<{ code: string; message: string }>
  /** The runtime's view of this pod; null when the runtime has no sandbox for it (or could not be asked: see runtimeUnavailable). */
  runtime: { state: string; sandboxCreatedAt: string | null; containers: ContainerRuntimeState[] } | null
  /** Why the runtime could not be asked (crictl missing or failing); null when it answered, or when there is none to ask. */
  runtimeUnavailable: string | null
  /** The kubelet's healthz as asked on the node; null when it could not be asked (see kubeletUnavailable). */
  kubelet: { healthy: boolean; message: string | null } | null
  kubeletUnavailable: string | null
  certificates: CertificateInfo[]
  certWarnDays: number
  /** The kubelet journal's lines that name this pod, oldest first; null when the journal was not read. */
  journal: Array<{ at: string; message: string }> | null
  /** Per container, the last lines of its most recent exited attempt (crash evidence). */
  lastLogLines: Record<string, string[]>
  /** The mirror pod's state; null or API_SERVER_UNAVAILABLE when no API server answers. */
  sync: 'IN_SYNC' | 'MIRROR_MISSING' | 'MIRROR_OUTDATED' | 'API_SERVER_UNAVAILABLE' | null
  now: Date
}

/** What keeps the pod from running ready and in sync, most likely cause first; [] when all is well. */
export function diagnosePod(e: PodEvidence): Problem[] {
  const pod = `${e.namespace}/${e.name} on node ${e.node}`
  const problems: Problem[] = [
    ...manifestProblems(e, pod),
    ...certificateProblems(e, pod),
    ...nodeProblems(e),
  ]
  const pulls = imagePullProblems(e, pod)
  const crashes = crashLoopProblems(e, pod)
  problems.push(...pulls, ...crashes)
  const notPickedUp = notPickedUpProblem(e, pod)
  if (notPickedUp) problems.push(notPickedUp)
  // Not running is the symptom; a more specific cause found above says it better.
  else if (pulls.length === 0 && crashes.length === 0) {
    const notRunning = notRunningProblem(e, pod)
    if (notRunning) problems.push(notRunning)
  }
  problems.push(...mirrorProblems(e, pod))
  return sortProblems(problems)
}

/** The node's own problems: the kubelet and the runtime, which every static pod on it depends on. */
export function nodeProblems(e: Pick<PodEvidence, 'node' | 'kubelet' | 'kubeletUnavailable' | 'runtimeUnavailable'>): Problem[] {
  const problems: Problem[] = []
  if (e.kubelet && !e.kubelet.healthy) {
    problems.push({
      code: 'KUBELET_UNHEALTHY',
      severity: 'CRITICAL',
      message: `The kubelet on node ${e.node} reports itself unhealthy${e.kubelet.message ? `: ${e.kubelet.message}` : ''}; it does not start or restart static pods reliably until it recovers.`,
      evidence: [`healthz: ${e.kubelet.message ?? 'not ok'}`],
    })
  } else if (!e.kubelet && e.kubeletUnavailable) {
    problems.push({
      code: 'KUBELET_UNHEALTHY',
      severity: 'WARNING',
      message: `The kubelet's health on node ${e.node} is unknown: ${e.kubeletUnavailable}.`,
      evidence: [`healthz: ${e.kubeletUnavailable}`],
    })
  }
  if (e.runtimeUnavailable) {
    problems.push({
      code: 'RUNTIME_UNAVAILABLE',
      severity: 'WARNING',
      message: `The container runtime on node ${e.node} cannot be asked (${e.runtimeUnavailable}), so whether its static pods run is unknown.`,
      evidence: [`crictl: ${e.runtimeUnavailable}`],
    })
  }
  return problems
}

export function sortProblems(problems: Problem[]): Problem[] {
  return [...problems].sort((a, b) => RANK.indexOf(a.code) - RANK.indexOf(b.code))
}

function manifestProblems(e: PodEvidence, pod: string): Problem[] {
  return e.findings.map((f) => ({
    code: 'MANIFEST_INVALID' as const,
    severity: 'CRITICAL' as const,
    message: `The manifest ${e.fileName} of ${pod} has a problem the kubelet will not run past: ${f.message}`,
    evidence: [`${f.code}: ${f.message}`],
  }))
}

function certificateProblems(e: PodEvidence, pod: string): Problem[] {
  return certificateFindings(e.certificates, e.certWarnDays).map((f) => {
    const cert = e.certificates.find((c) => c.path === f.path && c.notAfter === f.notAfter)
    const evidence = [`${f.path}: notAfter ${f.notAfter}${cert ? ` (subject ${cert.subject}; named by ${cert.referencedBy})` : ''}`]
    return f.code === 'CERTIFICATE_EXPIRED'
      ? { code: f.code, severity: 'CRITICAL' as const, message: `${pod} uses a certificate that has expired: ${f.path} (notAfter ${f.notAfter}).`, evidence }
      : { code: f.code, severity: 'WARNING' as const, message: `${pod} uses a certificate that expires soon: ${f.path} (notAfter ${f.notAfter}).`, evidence }
  })
}

function imagePullProblems(e: PodEvidence, pod: string): Problem[] {
  const containers = e.runtime?.containers ?? []
  const byReason = containers.filter((c) => c.reason && IMAGE_PULL_REASONS.has(c.reason))
  const journal = (e.journal ?? []).filter((l) => IMAGE_PULL_JOURNAL.test(l.message)).slice(-EVIDENCE_LINES)
  if (byReason.length === 0 && journal.length === 0) return []
  // A pull that failed once but has a running container since is over.
  if (byReason.length === 0 && containers.length > 0 && containers.every((c) => c.state === 'CONTAINER_RUNNING')) return []
  const images = byReason.map((c) => c.image).filter((i): i is string => Boolean(i))
  return [
    {
      code: 'IMAGE_PULL_FAILED',
      severity: 'CRITICAL',
      message: `The image of ${pod}${images.length > 0 ? ` (${[...new Set(images)].join(', ')})` : ''} cannot be pulled, so the kubelet cannot start it.`,
      evidence: [
        ...byReason.map((c) => `container ${c.name}: ${c.reason}${c.message ? `: ${c.message}` : ''}`),
        ...journal.map((l) => `kubelet ${l.at}: ${l.message}`),
      ],
    },
  ]
}

function crashLoopProblems(e: PodEvidence, pod: string): Problem[] {
  return (e.runtime?.containers ?? [])
    .filter((c) => (c.restartCount ?? 0) >= CRASH_LOOP_RESTARTS)
    .map((c) => {
      // The attempt that says why: the current one if it has exited, else the one before it.
      const ended = c.state === 'CONTAINER_EXITED' && c.exitCode !== null && c.exitCode !== undefined
        ? { exitCode: c.exitCode, reason: c.reason ?? null, finishedAt: c.finishedAt ?? null }
        : (c.lastTermination ?? null)
      const how = ended && ended.exitCode !== null ? `exit code ${ended.exitCode}${ended.reason ? ` (${ended.reason})` : ''}` : 'it keeps exiting'
      const logLines = (e.lastLogLines[c.name] ?? []).slice(-EVIDENCE_LINES)
      return {
        code: 'CRASH_LOOP' as const,
        severity: 'CRITICAL' as const,
        message: `Container ${c.name} of ${pod} keeps exiting: ${how}, ${c.restartCount} restarts.${logLines.length > 0 ? ` Last log line: ${logLines[logLines.length - 1]}` : ''}`,
        evidence: [
          ...(ended && ended.exitCode !== null ? [`exit code ${ended.exitCode}${ended.reason ? `, reason ${ended.reason}` : ''}${ended.finishedAt ? `, finished ${ended.finishedAt}` : ''}`] : []),
          `restart count ${c.restartCount}`,
          ...(c.message ? [`message: ${c.message}`] : []),
          ...logLines.map((l) => `log: ${l}`),
        ],
      }
    })
}

function notPickedUpProblem(e: PodEvidence, pod: string): Problem | null {
  if (!e.fileChangedAt || !e.runtime?.sandboxCreatedAt) return null
  const changed = Date.parse(e.fileChangedAt)
  const sandbox = Date.parse(e.runtime.sandboxCreatedAt)
  const since = (e.now.getTime() - changed) / 1000
  if (!(sandbox < changed) || since <= KUBELET_FILE_CHECK_SECONDS) return null
  return {
    code: 'NOT_PICKED_UP',
    severity: 'WARNING',
    message: `${e.fileName} changed ${Math.round(since)} s ago, but ${pod} still runs the sandbox created before that: the kubelet has not taken up the new content.`,
    evidence: [`file modified ${e.fileChangedAt}`, `sandbox created ${e.runtime.sandboxCreatedAt}`],
  }
}

function notRunningProblem(e: PodEvidence, pod: string): Problem | null {
  if (e.runtimeUnavailable) return null // unknown, not "not running": RUNTIME_UNAVAILABLE says so
  const starting = e.fileChangedAt !== null && (e.now.getTime() - Date.parse(e.fileChangedAt)) / 1000 < POD_START_GRACE_SECONDS
  if (starting) return null
  if (!e.runtime) {
    return {
      code: 'NOT_RUNNING',
      severity: 'CRITICAL',
      message: `${pod} has no pod sandbox in the container runtime: the kubelet is not running it.`,
      evidence: ['crictl pods: no sandbox named ' + e.mirrorPodName, ...journalNaming(e)],
    }
  }
  const stopped = e.runtime.containers.filter((c) => c.state !== 'CONTAINER_RUNNING')
  if (e.runtime.state === 'SANDBOX_READY' && stopped.length === 0 && e.runtime.containers.length > 0) return null
  return {
    code: 'NOT_RUNNING',
    severity: 'CRITICAL',
    message: `${pod} is not running: sandbox ${e.runtime.state}${stopped.length > 0 ? `, containers ${stopped.map((c) => `${c.name} ${c.state}`).join(', ')}` : e.runtime.containers.length === 0 ? ', no containers' : ''}.`,
    evidence: [
      `sandbox ${e.runtime.state}${e.runtime.sandboxCreatedAt ? ` (created ${e.runtime.sandboxCreatedAt})` : ''}`,
      ...stopped.map((c) => `container ${c.name}: ${c.state}${c.reason ? ` (${c.reason})` : ''}`),
      ...journalNaming(e),
    ],
  }
}

function journalNaming(e: PodEvidence): string[] {
  return (e.journal ?? []).slice(-EVIDENCE_LINES).map((l) => `kubelet ${l.at}: ${l.message}`)
}

function mirrorProblems(e: PodEvidence, pod: string): Problem[] {
  if (e.sync === 'MIRROR_MISSING') {
    return [{ code: 'MIRROR_MISSING', severity: 'WARNING', message: `The API server has no mirror pod ${e.mirrorPodName} for ${pod}.`, evidence: [`mirror pod ${e.namespace}/${e.mirrorPodName}: not found`] }]
  }
  if (e.sync === 'MIRROR_OUTDATED') {
    return [{ code: 'MIRROR_OUTDATED', severity: 'INFO', message: `The mirror pod ${e.mirrorPodName} shows other containers or images than the manifest of ${pod}.`, evidence: [`mirror pod ${e.namespace}/${e.mirrorPodName}: outdated`] }]
  }
  return []
}
