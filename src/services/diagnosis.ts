// Break-glass diagnosis: why a static pod is not running, answered from the
// node itself (through its agent, so with the API server down too). This
// service gathers the evidence — container logs, the kubelet's journal, the
// certificate files a pod's flags name — with the rules on who may read what,
// and hands it to src/diagnosis/ (pure) to be judged.
//
// Logs and the journal can hold secrets (Kubernetes guards pods/log the same
// way): reading them needs the operator role and every read is an audit
// event. A viewer's diagnosis is made without them. Private keys are never
// read: diagnosis/certificates.ts names only certificate and kubeconfig files.

import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { CONTAINER_LOG_MAX_BYTES, KUBELET_JOURNAL_MAX_LINES, type ContainerLogResult } from '../agents/agent.ts'
import type { AgentProvider } from '../agents/registry.ts'
import type { NodeRecord } from '../domain.ts'
import { errorText, quoteInput, ServiceError } from '../errors.ts'
import {
  certificateFindings,
  certificateRefsOf,
  certificatesInKubeconfig,
  certificatesInPem,
  MAX_CERTIFICATE_FILE_BYTES,
  type CertificateInfo,
  type CertificateRef,
} from '../diagnosis/certificates.ts'
import { diagnosePod, nodeProblems, sortProblems, CRASH_LOOP_RESTARTS, type PodEvidence, type Problem } from '../diagnosis/problems.ts'
import { RecentValues } from '../recent-values.ts'
import { authorize, canSeeNode, hasRole, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { NodeState } from './node-state.ts'
import type { StaticPodView } from './static-pod-view.ts'

export interface DiagnosisOptions {
  agents: AgentProvider
  audit: AuditService
  clock: () => Date
  log: Logger
  /** CERT_EXPIRY_WARNING_DAYS: a certificate this close to notAfter is CERTIFICATE_EXPIRES_SOON. */
  certWarnDays: number
  /** Told of the certificates read for each pod (metrics: staticpod_certificate_expiry_seconds). */
  onCertificates?: ((pod: { node: string; namespace: string; name: string }, certificates: CertificateInfo[]) => void) | undefined
}

export interface ContainerLogArgs {
  container?: string | null | undefined
  previous?: boolean | null | undefined
  tailLines?: number | null | undefined
  sinceSeconds?: number | null | undefined
  limitBytes?: number | null | undefined
}

export interface ContainerLogView {
  container: string
  previous: boolean
  lines: string[]
  truncated: boolean
  source: string
}

export interface KubeletLogArgs {
  sinceSeconds?: number | null | undefined
  tailLines?: number | null | undefined
  grep?: string | null | undefined
}

export interface KubeletLogView {
  lines: Array<{ at: string; message: string }>
  truncated: boolean
}

/** How far back a diagnosis looks in the kubelet's journal for lines that name the pod. */
const DIAGNOSIS_JOURNAL_SECONDS = 900
const DIAGNOSIS_JOURNAL_LINES = 2000
/** Log lines of a crashed attempt a diagnosis shows. */
const DIAGNOSIS_LOG_LINES = 5
const MAX_TAIL_LINES = 100_000
const MAX_SINCE_SECONDS = 366 * 24 * 3600
const MAX_GREP_LENGTH = 256

/**
 * What one request has read on its nodes: each file, journal and log at most
 * once however many fields ask (a GraphQL query makes one per request; REST
 * one per call).
 */
export class DiagnosisReads {
  readonly files = new Map<string, Promise<Buffer | null>>()
  readonly journals = new Map<string, Promise<Array<{ at: string; message: string }> | null>>()
}

export class DiagnosisService {
  /** Parsed certificate files by content hash: a fleet's kubeadm certificates are parsed once, not per request. */
  private readonly parsed = new RecentValues<string, { certificates: CertificateInfo[]; furtherRefs: CertificateRef[] }>(2048)

  constructor(private readonly o: DiagnosisOptions) {}

  // ------------------------------------------------------------------ logs

  /** Operator; audited. NOT_FOUND when the container has no such attempt (never ran, or no previous one). */
  async containerLog(pod: StaticPodView, args: ContainerLogArgs, actor: Actor): Promise<ContainerLogView> {
    const container = containerOf(pod, args.container)
    const previous = args.previous ?? false
    const target = `${pod.namespace}/${pod.name}/${container}`
    return this.audited(actor, 'readContainerLog', pod.nodeName, target, async () => {
      const request = {
        namespace: pod.namespace,
        pod: pod.name,
        container,
        previous,
        tailLines: boundedInt(args.tailLines ?? 200, 0, MAX_TAIL_LINES, 'tailLines'),
        sinceSeconds: args.sinceSeconds === null || args.sinceSeconds === undefined ? null : boundedInt(args.sinceSeconds, 1, MAX_SINCE_SECONDS, 'sinceSeconds'),
        limitBytes: boundedInt(args.limitBytes ?? 1024 * 1024, 1, CONTAINER_LOG_MAX_BYTES, 'limitBytes'),
      }
      const agent = await this.o.agents.agentFor(pod.node)
      const log = await agent.containerLog(request)
      if (!log) {
        throw new ServiceError('NOT_FOUND', `container ${container} of ${pod.namespace}/${pod.name} on node ${pod.nodeName} has no ${previous ? 'previous attempt' : 'log: it never ran'}`, ['container'])
      }
      return { result: logView(container, previous, log), message: `${log.lines.length} lines from ${log.source}${log.truncated ? ' (truncated)' : ''}` }
    })
  }

  /** Operator; audited. The kubelet's journal, oldest first; grep is a plain substring, applied here. */
  async kubeletLog(node: NodeRecord, args: KubeletLogArgs, actor: Actor): Promise<KubeletLogView> {
    const grep = args.grep ?? null
    if (grep !== null && (grep.length === 0 || grep.length > MAX_GREP_LENGTH)) {
      throw new ServiceError('VALIDATION_FAILED', `grep must be 1 to ${MAX_GREP_LENGTH} characters`, ['grep'])
    }
    const sinceSeconds = boundedInt(args.sinceSeconds ?? 600, 1, MAX_SINCE_SECONDS, 'sinceSeconds')
    const tailLines = boundedInt(args.tailLines ?? 200, 0, KUBELET_JOURNAL_MAX_LINES, 'tailLines')
    return this.audited(actor, 'readKubeletLog', node.name, 'kubelet', async () => {
      const agent = await this.o.agents.agentFor(node)
      // With a filter, the tail is of the matching lines: read the most the window may hold, then filter and cut.
      const journal = await agent.kubeletJournal({ sinceSeconds, tailLines: grep ? KUBELET_JOURNAL_MAX_LINES : tailLines })
      if ('unavailable' in journal) throw new ServiceError('NODE_UNREACHABLE', `node ${node.name}: the kubelet's journal cannot be read: ${journal.unavailable}`)
      const matching = grep ? journal.lines.filter((l) => l.message.includes(grep)) : journal.lines
      const lines = matching.slice(Math.max(0, matching.length - tailLines))
      return { result: { lines, truncated: journal.truncated || lines.length < matching.length }, message: `${lines.length} lines${grep ? ` matching ${quoteInput(grep)}` : ''}` }
    })
  }

  // ------------------------------------------------------------------ certificates

  /** The certificates the pod's flags and kubeconfigs name, as its node has them; read once per request. */
  async certificates(pod: StaticPodView, reads: DiagnosisReads): Promise<CertificateInfo[]> {
    const now = this.o.clock()
    const queue = certificateRefsOf(pod.pod)
    const seen = new Set(queue.map((r) => r.path))
    const found: CertificateInfo[] = []
    // Kubeconfigs may name further certificate files (client-certificate: <path>): read those too, once.
    for (let i = 0; i < queue.length && i < 128; i++) {
      const ref = queue[i] as CertificateRef
      const bytes = await this.readFile(pod.node, ref.path, reads).catch((err: unknown) => {
        this.o.log.debug({ node: pod.nodeName, path: ref.path, err: errorText(err) }, 'certificate file not readable')
        return null
      })
      if (!bytes) continue
      const parsed = this.parse(bytes, ref, now)
      found.push(...parsed.certificates.map((c) => withDaysLeft(c, now)))
      for (const more of parsed.furtherRefs) {
        if (!seen.has(more.path)) {
          seen.add(more.path)
          queue.push(more)
        }
      }
    }
    this.o.onCertificates?.({ node: pod.nodeName, namespace: pod.namespace, name: pod.name }, found)
    return found
  }

  /** CERTIFICATE_EXPIRED / CERTIFICATE_EXPIRES_SOON findings of a node's static pods (for Node.findings). */
  async certificateFindings(views: StaticPodView[], reads: DiagnosisReads): Promise<Array<{ code: 'CERTIFICATE_EXPIRED' | 'CERTIFICATE_EXPIRES_SOON'; fileName: string; message: string }>> {
    const out: Array<{ code: 'CERTIFICATE_EXPIRED' | 'CERTIFICATE_EXPIRES_SOON'; fileName: string; message: string }> = []
    for (const view of views) {
      for (const f of certificateFindings(await this.certificates(view, reads), this.o.certWarnDays)) {
        out.push({ code: f.code, fileName: view.fileName, message: `${view.namespace}/${view.name}: ${f.message}` })
      }
    }
    return out
  }

  // ------------------------------------------------------------------ diagnosis

  /** What keeps the pod from running ready and in sync, most likely cause first. */
  async diagnosePod(pod: StaticPodView, state: NodeState, sync: PodEvidence['sync'], actor: Actor, reads: DiagnosisReads): Promise<Problem[]> {
    const { observation } = state
    const runtimePod = observation.runtime?.find((p) => p.namespace === pod.namespace && p.name === pod.name) ?? null
    const operator = hasRole(actor, 'operator') && canSeeNode(actor, pod.nodeName)
    const crashed = (runtimePod?.containers ?? []).filter((c) => (c.restartCount ?? 0) >= CRASH_LOOP_RESTARTS)
    const [certificates, journal, lastLogLines] = await Promise.all([
      this.certificates(pod, reads),
      operator ? this.journalNaming(pod, reads, actor) : Promise.resolve(null),
      operator ? this.crashLogs(pod, crashed.map((c) => c.name), actor) : Promise.resolve({}),
    ])
    return diagnosePod({
      node: pod.nodeName,
      namespace: pod.namespace,
      name: pod.name,
      mirrorPodName: pod.mirrorPodName,
      fileName: pod.fileName,
      fileChangedAt: pod.modifiedAt,
      findings: observation.findings.filter((f) => f.fileName === pod.fileName),
      runtime: runtimePod && { state: runtimePod.state, sandboxCreatedAt: runtimePod.sandboxCreatedAt ?? null, containers: runtimePod.containers },
      runtimeUnavailable: observation.runtime === null ? observation.runtimeUnavailableReason : null,
      kubelet: observation.kubelet && { healthy: observation.kubelet.healthy, message: observation.kubelet.message },
      kubeletUnavailable: observation.kubelet ? null : observation.kubeletUnavailableReason,
      certificates,
      certWarnDays: this.o.certWarnDays,
      journal,
      lastLogLines,
      sync,
      now: this.o.clock(),
    })
  }

  /** The node's own problems, then each of its static pods' (named), most likely cause first. */
  async diagnoseNode(
    state: NodeState,
    views: StaticPodView[],
    syncOf: (pod: StaticPodView) => Promise<PodEvidence['sync']>,
    actor: Actor,
    reads: DiagnosisReads,
  ): Promise<Problem[]> {
    const { observation } = state
    const own = nodeProblems({
      node: state.node.name,
      kubelet: observation.kubelet && { healthy: observation.kubelet.healthy, message: observation.kubelet.message },
      kubeletUnavailable: observation.kubelet ? null : observation.kubeletUnavailableReason,
      runtimeUnavailable: observation.runtime === null ? observation.runtimeUnavailableReason : null,
    })
    const ofPods = await Promise.all(views.map(async (view) => this.diagnosePod(view, state, await syncOf(view), actor, reads)))
    // A node problem is said once, not once per pod.
    const podOnly = ofPods.flat().filter((p) => p.code !== 'KUBELET_UNHEALTHY' && p.code !== 'RUNTIME_UNAVAILABLE')
    return sortProblems([...own, ...podOnly])
  }

  // ------------------------------------------------------------------ evidence

  private async journalNaming(pod: StaticPodView, reads: DiagnosisReads, actor: Actor): Promise<Array<{ at: string; message: string }> | null> {
    let journal = reads.journals.get(pod.nodeName)
    if (!journal) {
      journal = this.audited(actor, 'readKubeletLog', pod.nodeName, 'kubelet', async () => {
        const agent = await this.o.agents.agentFor(pod.node)
        const read = await agent.kubeletJournal({ sinceSeconds: DIAGNOSIS_JOURNAL_SECONDS, tailLines: DIAGNOSIS_JOURNAL_LINES })
        return 'unavailable' in read ? { result: null, message: `for diagnosis: unavailable: ${read.unavailable}` } : { result: read.lines, message: `for diagnosis: ${read.lines.length} lines` }
      }).catch(() => null)
      reads.journals.set(pod.nodeName, journal)
    }
    const lines = await journal
    // The kubelet names a static pod by its sandbox (mirror) name, "kube-apiserver-cp-1", in its log lines.
    return lines && lines.filter((l) => l.message.includes(pod.mirrorPodName))
  }

  /** The last lines of each crash-looping container's most recent exited attempt. */
  private async crashLogs(pod: StaticPodView, containers: string[], actor: Actor): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {}
    for (const container of containers.slice(0, 8)) {
      const current = await this.containerLog(pod, { container, previous: false, tailLines: DIAGNOSIS_LOG_LINES, limitBytes: 64 * 1024 }, actor).catch(() => null)
      // A container that runs again shows why it last stopped in its previous attempt.
      const lines = current && current.lines.length > 0 ? current : await this.containerLog(pod, { container, previous: true, tailLines: DIAGNOSIS_LOG_LINES, limitBytes: 64 * 1024 }, actor).catch(() => null)
      if (lines) out[container] = lines.lines
    }
    return out
  }

  private readFile(node: NodeRecord, path: string, reads: DiagnosisReads): Promise<Buffer | null> {
    const key = `${node.name}\u0000${path}`
    let read = reads.files.get(key)
    if (!read) {
      read = this.o.agents.agentFor(node).then((agent) => agent.readNodeFile(path, MAX_CERTIFICATE_FILE_BYTES))
      reads.files.set(key, read)
    }
    return read
  }

  private parse(bytes: Buffer, ref: CertificateRef, now: Date): { certificates: CertificateInfo[]; furtherRefs: CertificateRef[] } {
    const key = `${createHash('sha256').update(bytes).digest('hex')}\u0000${ref.kind}\u0000${ref.path}\u0000${ref.referencedBy}`
    const cached = this.parsed.get(key)
    if (cached) return cached
    const parsed =
      ref.kind === 'kubeconfig'
        ? certificatesInKubeconfig(bytes, ref.path, now)
        : { ...certificatesInPem(bytes, ref, now), furtherRefs: [] }
    const value = { certificates: parsed.certificates, furtherRefs: parsed.furtherRefs }
    this.parsed.set(key, value)
    return value
  }

  /** Operator on the node; the read is an audit event whatever its outcome. */
  private async audited<T>(actor: Actor, action: string, node: string, target: string, read: () => Promise<{ result: T; message: string }>): Promise<T> {
    const record = (result: string, message: string) =>
      this.o.audit.record({ actor: actor.name, action, node, target, fromHash: null, toHash: null, result, message, dryRun: false })
    try {
      authorize(actor, 'operator', node)
      const { result, message } = await read()
      await record('OK', message)
      return result
    } catch (err) {
      await record(err instanceof ServiceError ? err.code : 'INTERNAL_ERROR', errorText(err)).catch(() => undefined)
      throw err
    }
  }
}

// ------------------------------------------------------------------ rules

/** The container a log is of: the one named, or the pod's only one. */
function containerOf(pod: StaticPodView, name: string | null | undefined): string {
  const names = pod.containers.map((c) => c.name)
  if (name === null || name === undefined) {
    const only = pod.containers.filter((c) => !c.init)
    if (only.length === 1 && only[0]) return only[0].name
    throw new ServiceError('VALIDATION_FAILED', `${pod.namespace}/${pod.name} has ${only.length} containers (${names.join(', ')}): name one with container`, ['container'])
  }
  if (!names.includes(name)) {
    throw new ServiceError('NOT_FOUND', `${pod.namespace}/${pod.name} on node ${pod.nodeName} has no container ${quoteInput(name)} (it has ${names.join(', ')})`, ['container'])
  }
  return name
}

function boundedInt(value: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ServiceError('VALIDATION_FAILED', `${field} must be an integer from ${min} to ${max}; got ${value}`, [field])
  }
  return value
}

function logView(container: string, previous: boolean, log: ContainerLogResult): ContainerLogView {
  return { container, previous, lines: log.lines, truncated: log.truncated, source: log.source }
}

function withDaysLeft(cert: CertificateInfo, now: Date): CertificateInfo {
  return { ...cert, daysLeft: Math.floor((Date.parse(cert.notAfter) - now.getTime()) / 86_400_000) }
}
