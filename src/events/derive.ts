// What happened on a node, from what the service observed: the events between
// two consecutive stored observations of one node, and the certificates of a
// static pod entering their warning window. Pure, like src/manifest/ and
// src/diagnosis/: the caller (the watcher in src/services/) reads the node,
// answers who wrote a change from the revisions it keeps, and stores the events.
//
// An event is a transition, never a state: the same observation twice gives
// nothing, so a node that does not change is silent however often it is read.
// - The first observation of a node (or the first after reads that never
//   succeeded) is the baseline: only NODE_UNREACHABLE, if it says so.
// - A failed read keeps the last pods, findings and runtime state it had
//   (services/node-state.ts recordFailure): it says nothing about them, so
//   it gives only NODE_UNREACHABLE, and the read after it is compared with
//   that last state.
// - Readiness is the rule the ready gauge uses (domain.ts isPodReady),
//   judged only where the runtime was asked in both observations (a pod that
//   was not in the previous one was not ready in it, runtime or not).
// - CRASH_LOOP is one container of one sandbox reaching CRASH_LOOP_RESTARTS
//   restarts: once, until the kubelet makes a new sandbox (a new manifest,
//   or a restart of the pod), whose restarts count from 0 again.
//
// Every field is bounded (bounds.ts) and the events come in one order (node
// events, then by namespace and name, then by type as EVENT_TYPES lists
// them), so a replay of the same observations gives the same events.

import { createHash } from 'node:crypto'
import { certificateFindings, type CertificateInfo } from '../diagnosis/certificates.ts'
import { CRASH_LOOP_RESTARTS } from '../diagnosis/problems.ts'
import {
  EVENT_TYPES,
  isPodReady,
  runtimeOfPod,
  type ContainerRuntimeState,
  type EventType,
  type NewEvent,
  type NodeObservation,
  type ObservedPod,
  type PodRuntimeState,
} from '../domain.ts'
import type { Finding } from '../manifest/types.ts'
import { MAX_ACTOR, MAX_HASH, MAX_MESSAGE, MAX_NAME, bounded, clip, shortHash } from './bounds.ts'

/** What became of a static pod's manifest between two observations. */
export type PodChange = 'added' | 'changed' | 'removed'

export interface ObservationContext {
  /** The events' time (as a rule the next observation's observedAt, or the time of the failed read). */
  at: string
  /**
   * Who made the change through the service; null when it was made on the
   * node. Asked only for pods that were added, changed or removed. pod is the
   * one in the next observation (added, changed: its hash and revision, and
   * managed false when its newest revision was OBSERVED on the node), or for
   * removed the one in the previous observation (the service records its own
   * removal as a DELETE revision with the actor).
   */
  actorOf(pod: ObservedPod, change: PodChange): string | null
  /** A container restarted this often crash-loops; CRASH_LOOP_RESTARTS (3) when absent, as a rollout's wait and diagnosis judge it. */
  crashLoopRestarts?: number
}

/** An event before its sort: the key that orders events of one pod and type among themselves. */
interface Pending {
  event: NewEvent
  detail: string
}

const TYPE_ORDER: ReadonlyMap<EventType, number> = new Map(EVENT_TYPES.map((type, index) => [type, index]))

/**
 * The events between two consecutive stored observations of one node
 * (previous null: the node's first). See the head of this file for the rules.
 */
export function observationEvents(previous: NodeObservation | null, next: NodeObservation, context: ObservationContext): NewEvent[] {
  if (previous !== null && previous.node !== next.node) {
    throw new Error(`observationEvents compares two observations of one node, not ${previous.node} and ${next.node}`)
  }
  const node = next.node
  const out: Pending[] = []
  const emit = (type: EventType, message: string, fields: Partial<Pick<NewEvent, 'namespace' | 'name' | 'fromHash' | 'toHash' | 'actor'>> = {}, detail = ''): void => {
    out.push({ event: eventOf(node, context.at, type, message, fields), detail })
  }

  const wasReachable = previous?.agent.reachable ?? true
  if (!next.agent.reachable && wasReachable) {
    const error = next.agent.lastError
    emit('NODE_UNREACHABLE', error ? `${bounded(node, 64)} is unreachable: ${error}` : `${bounded(node, 64)} is unreachable`)
  } else if (next.agent.reachable && !wasReachable) {
    emit('NODE_REACHABLE', `${bounded(node, 64)} is reachable again`)
  }

  // The baseline, and a failed read (it only repeats the last state).
  if (previous === null || previous.observedAt === null || !next.agent.reachable) return sorted(out)

  podEvents(previous, next, context, emit)
  readinessEvents(previous, next, emit)
  crashLoopEvents(previous, next, context.crashLoopRestarts ?? CRASH_LOOP_RESTARTS, emit)
  findingEvents(previous, next, emit)
  return sorted(out)
}

type Emit = (type: EventType, message: string, fields?: Partial<Pick<NewEvent, 'namespace' | 'name' | 'fromHash' | 'toHash' | 'actor'>>, detail?: string) => void

const keyOf = (pod: { namespace: string; name: string }): string => `${pod.namespace}/${pod.name}`

function podsByKey(observation: NodeObservation): Map<string, ObservedPod> {
  return new Map(observation.pods.map((p) => [keyOf(p), p]))
}

/** "kube-system/kube-apiserver", bounded, for a message. */
function podName(pod: { namespace: string; name: string }): string {
  return bounded(keyOf(pod), 120)
}

function by(actor: string | null): string {
  return actor === null ? 'on the node' : `by ${bounded(actor, 64)}`
}

function podEvents(previous: NodeObservation, next: NodeObservation, context: ObservationContext, emit: Emit): void {
  const before = podsByKey(previous)
  const after = podsByKey(next)
  for (const [key, pod] of after) {
    const old = before.get(key)
    const ids = { namespace: pod.namespace, name: pod.name }
    if (!old) {
      const actor = context.actorOf(pod, 'added')
      emit('STATIC_POD_ADDED', `${podName(pod)} added ${by(actor)} (${bounded(pod.fileName, 80)}, ${shortHash(pod.hash)})`, { ...ids, toHash: pod.hash, actor })
    } else if (old.hash !== pod.hash || old.fileName !== pod.fileName) {
      // A file renamed is a change too: the pod's UID follows from its path, so the kubelet recreates it (and node-state records a revision).
      const actor = context.actorOf(pod, 'changed')
      const what =
        old.fileName === pod.fileName
          ? `${bounded(pod.fileName, 80)}, ${shortHash(old.hash)} → ${shortHash(pod.hash)}`
          : `moved from ${bounded(old.fileName, 60)} to ${bounded(pod.fileName, 60)}${old.hash === pod.hash ? '' : `, ${shortHash(old.hash)} → ${shortHash(pod.hash)}`}`
      emit('STATIC_POD_CHANGED', `${podName(pod)} changed ${by(actor)} (${what})`, { ...ids, fromHash: old.hash, toHash: pod.hash, actor })
    }
  }
  for (const [key, old] of before) {
    if (after.has(key)) continue
    const actor = context.actorOf(old, 'removed')
    emit('STATIC_POD_REMOVED', `${podName(old)} removed ${by(actor)} (${bounded(old.fileName, 80)}, was ${shortHash(old.hash)})`, {
      namespace: old.namespace,
      name: old.name,
      fromHash: old.hash,
      actor,
    })
  }
}

/**
 * POD_READY / POD_NOT_READY where the ready rule's answer changed, for the
 * pods in the next observation, when its runtime was asked. A pod absent
 * from the previous observation was not ready then; one present in it is
 * judged only if the runtime was asked then too (otherwise its state before
 * is unknown, and a guess would announce a steady pod again).
 */
function readinessEvents(previous: NodeObservation, next: NodeObservation, emit: Emit): void {
  if (next.runtime === null) return
  const before = podsByKey(previous)
  for (const pod of next.pods) {
    const old = before.get(keyOf(pod))
    if (old && previous.runtime === null) continue
    const wasReady = old ? isPodReady(runtimeOfPod(previous, old)) : false
    const runtime = runtimeOfPod(next, pod)
    const ready = isPodReady(runtime)
    if (ready === wasReady) continue
    const ids = { namespace: pod.namespace, name: pod.name }
    if (ready) emit('POD_READY', `${podName(pod)} is ready (sandbox READY, ${countOf(runtime?.containers.length ?? 0, 'container')} running)`, ids)
    else emit('POD_NOT_READY', `${podName(pod)} is not ready: ${notReadyReason(runtime)}`, ids)
  }
}

function countOf(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}

/** Why the ready rule says no, in a few words (at most three containers named). */
function notReadyReason(runtime: PodRuntimeState | null): string {
  if (!runtime) return 'the container runtime lists no sandbox for it'
  if (runtime.state !== 'READY') return `sandbox ${bounded(runtime.state, 32)}`
  if (runtime.containers.length === 0) return 'its sandbox has no containers'
  const failing = runtime.containers.filter((c) => c.state !== 'RUNNING' || c.ready === false)
  const named = failing.slice(0, 3).map((c) => {
    const exit = exitOf(c)
    return `container ${bounded(c.name, 64)} ${c.state === 'RUNNING' ? 'not ready' : bounded(c.state, 32)}${exit ? ` (${exit})` : ''}`
  })
  if (failing.length > 3) named.push(`${failing.length - 3} more`)
  return named.join(', ')
}

/** How the container's last attempt ended, when the runtime said: "exit code 1, Error", or "". */
function exitOf(c: ContainerRuntimeState): string {
  // The current attempt when it has ended, else the one before it.
  const current = c.state !== 'RUNNING' && (c.exitCode != null || c.reason != null) ? { exitCode: c.exitCode ?? null, reason: c.reason ?? null } : null
  const last = current ?? c.lastTermination ?? null
  if (!last) return ''
  const parts = [last.exitCode !== null ? `exit code ${last.exitCode}` : null, last.reason ? bounded(last.reason, 40) : null].filter((p) => p !== null)
  return parts.join(', ')
}

/**
 * CRASH_LOOP for each container of a static pod of the next observation that
 * has now restarted `threshold` times and had not in the previous
 * observation of the same sandbox. A new sandbox (another sandboxId, when
 * both are known), or a restart count that went down (only a new sandbox
 * does that), counts from 0. Judged where the runtime was asked in both
 * observations, or for a pod that is new (it had no restarts before).
 */
function crashLoopEvents(previous: NodeObservation, next: NodeObservation, threshold: number, emit: Emit): void {
  if (next.runtime === null) return
  const before = podsByKey(previous)
  for (const pod of next.pods) {
    const runtime = runtimeOfPod(next, pod)
    if (!runtime) continue
    const old = before.get(keyOf(pod))
    if (old && previous.runtime === null) continue
    const oldRuntime = old ? runtimeOfPod(previous, old) : null
    const sameSandbox = oldRuntime !== null && (oldRuntime.sandboxId === undefined || runtime.sandboxId === undefined || oldRuntime.sandboxId === runtime.sandboxId)
    for (const c of runtime.containers) {
      const restarts = c.restartCount
      if (restarts === null || restarts < threshold) continue
      const was = sameSandbox ? (oldRuntime.containers.find((o) => o.name === c.name)?.restartCount ?? 0) : 0
      if (was >= threshold && was <= restarts) continue
      const exit = exitOf(c)
      emit(
        'CRASH_LOOP',
        `${podName(pod)}: container ${bounded(c.name, 64)} has restarted ${countOf(restarts, 'time')}${exit ? ` (last: ${exit})` : ''}`,
        { namespace: pod.namespace, name: pod.name },
        c.name,
      )
    }
  }
}

const findingKey = (f: Finding): string => `${f.code}\u0000${f.fileName ?? ''}`

/**
 * FINDING_ADDED / FINDING_RESOLVED, findings keyed by code and file (a
 * finding whose message alone changed is the same finding). An event is
 * about the pod whose manifest is that file, when there is one (in the next
 * observation, else the previous), else about the node (namespace and name null).
 */
function findingEvents(previous: NodeObservation, next: NodeObservation, emit: Emit): void {
  const before = new Map(previous.findings.map((f) => [findingKey(f), f]))
  const after = new Map(next.findings.map((f) => [findingKey(f), f]))
  const podOfFile = new Map<string, ObservedPod>()
  for (const pod of [...previous.pods, ...next.pods]) podOfFile.set(pod.fileName, pod)
  const about = (f: Finding): { namespace: string | null; name: string | null } => {
    const pod = f.fileName === null ? undefined : podOfFile.get(f.fileName)
    return pod ? { namespace: pod.namespace, name: pod.name } : { namespace: null, name: null }
  }
  const where = (f: Finding): string => (f.fileName === null ? 'the static pod directory' : bounded(f.fileName, 80))
  for (const [key, f] of after) {
    if (!before.has(key)) emit('FINDING_ADDED', `${f.code} in ${where(f)}: ${f.message}`, about(f), key)
  }
  for (const [key, f] of before) {
    if (!after.has(key)) emit('FINDING_RESOLVED', `${f.code} in ${where(f)} resolved (was: ${f.message})`, about(f), key)
  }
}

/**
 * CERTIFICATE_EXPIRES_SOON for each of a static pod's certificates that
 * expires in less than warnDays, or has expired (the message says which), as
 * certificateFindings judges them. Each has an onceKey of the node, the file
 * and its notAfter (hashed: bounded whatever the path), so one file's one
 * expiry is announced once ever, however often its certificates are read; a
 * renewed certificate (another notAfter) entering the window is announced again.
 */
export function certificateEvents(
  node: string,
  pod: { namespace: string; name: string },
  certificates: CertificateInfo[],
  warnDays: number,
  at: string,
): NewEvent[] {
  const seen = new Set<string>()
  const events: NewEvent[] = []
  for (const finding of certificateFindings(certificates, warnDays)) {
    const onceKey = certificateOnceKey(node, finding.path, finding.notAfter)
    if (seen.has(onceKey)) continue
    seen.add(onceKey)
    events.push({ ...eventOf(node, at, 'CERTIFICATE_EXPIRES_SOON', `${podName(pod)}: ${finding.message}`, { namespace: pod.namespace, name: pod.name }), onceKey })
  }
  return events
}

/** "cert:" and the SHA-256 of node, path and notAfter (NUL-separated: none of them holds a NUL). */
function certificateOnceKey(node: string, path: string, notAfter: string): string {
  return `cert:${createHash('sha256').update(`${node}\u0000${path}\u0000${notAfter}`).digest('hex')}`
}

function eventOf(
  node: string,
  at: string,
  type: EventType,
  message: string,
  fields: Partial<Pick<NewEvent, 'namespace' | 'name' | 'fromHash' | 'toHash' | 'actor'>>,
): NewEvent {
  const orNull = (value: string | null | undefined, max: number): string | null => (value === null || value === undefined ? null : clip(value, max))
  return {
    at,
    type,
    node: clip(node, MAX_NAME),
    namespace: orNull(fields.namespace, MAX_NAME),
    name: orNull(fields.name, MAX_NAME),
    message: bounded(message, MAX_MESSAGE),
    fromHash: orNull(fields.fromHash, MAX_HASH),
    toHash: orNull(fields.toHash, MAX_HASH),
    actor: orNull(fields.actor, MAX_ACTOR),
  }
}

/** Node events (no namespace) first, then by namespace and name, then type (EVENT_TYPES' order), then detail; node findings last. */
function sorted(pending: Pending[]): NewEvent[] {
  const group = ({ event }: Pending): number => (event.type === 'NODE_UNREACHABLE' || event.type === 'NODE_REACHABLE' ? 0 : event.namespace === null ? 2 : 1)
  const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
  return pending
    .sort(
      (a, b) =>
        group(a) - group(b) ||
        compare(a.event.namespace ?? '', b.event.namespace ?? '') ||
        compare(a.event.name ?? '', b.event.name ?? '') ||
        (TYPE_ORDER.get(a.event.type) ?? 0) - (TYPE_ORDER.get(b.event.type) ?? 0) ||
        compare(a.detail, b.detail),
    )
    .map((p) => p.event)
}
