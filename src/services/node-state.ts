// What is on each node: read live through its agent, or served from the store
// when the last reading is recent enough. A live reading is reconciled with the
// revision history: bytes the service has not seen before (a hand edit, a file
// kubeadm wrote) become OBSERVED revisions.
//
// Per-node failures are data: a node that cannot be read gives its last
// observation, marked stale, and a failure the caller reports next to the data.

import type { NodeAgent } from '../agents/agent.ts'
import type { AgentProvider } from '../agents/registry.ts'
import { errorText, ServiceError, isServiceError } from '../errors.ts'
import { lintManifestDir } from '../manifest/lint.ts'
import type { DirEntry, FoundPod } from '../manifest/types.ts'
import type { EventRecord, NodeObservation, NodeRecord, ObservedPod, RevisionRecord } from '../domain.ts'
import type { Store } from '../store/store.ts'
import { podKeyString } from '../domain.ts'
import { observationEvents } from '../events/derive.ts'
import { mapWithConcurrency } from '../concurrency.ts'
import { ObservationCache } from './observation-cache.ts'

/** A node's state as a query sees it. */
export interface NodeState {
  node: NodeRecord
  observation: NodeObservation
  /** The live read failed just now; the observation is the last one that worked. */
  stale: boolean
}

/** What the kubelet and the container runtime last said on a node. */
type NodeHealth = Pick<NodeObservation, 'kubelet' | 'kubeletUnavailableReason' | 'runtime' | 'runtimeUnavailableReason'>

/** A read of a node's manifests: the stored observation and the listing it came from. */
export interface ManifestReading {
  observation: NodeObservation
  entries: DirEntry[]
  health: NodeHealth
  /** The newest revision of each pod found, as recorded by this reading (OBSERVED ones included), by podKeyString. */
  revisions: Map<string, RevisionRecord>
  /** The write path's: the observation stored when the listing was read, and its version (null: none stored). */
  storedBefore?: StoredVersion | null
}

/** A stored observation and the version it was stored under (null: by an older release). */
interface StoredVersion {
  version: string | null
  observation: NodeObservation
}

export interface NodeFailure {
  node: string
  error: ServiceError
}

/** Told of every live read of a node (metrics). */
export interface NodeReadObserver {
  nodeRead(node: string, seconds: number, errorCode: string | null): void
  /** Each observation node-state records: a live read that worked, or a failure (the metrics' alerting gauges). */
  observed?(observation: NodeObservation): void
}

/** Told of the events each stored observation produced (the event service: subscribers and webhooks). */
export interface EventSink {
  recorded(events: readonly EventRecord[]): void
}

export interface NodeStateOptions {
  store: Store
  agents: AgentProvider
  clock: () => Date
  /** How many nodes are read at once by one request. */
  fanOut: number
  /** The most nodes one request may ask for. */
  maxNodesPerRequest: number
  /** Told of every live read (metrics). */
  observer?: NodeReadObserver | undefined
  /** Told of the events stored observations produced. */
  events?: EventSink | undefined
}

/** How one stored observation came about, for storing it after the one before. */
interface StoreContext {
  /**
   * The write path's own state after its write, made under the node lock:
   * stored even when another reader stored an observation meanwhile. A plain
   * read is not (that reader's observation may be the newer one).
   */
  authoritative: boolean
  /** When the read began (ISO): a plain read loses to an observation stored by a read that ended after this. */
  readStartedAt: string
  /** Who wrote each pod's newest revision through the service (by podKeyString); absent: seen on the node. */
  actors: ReadonlyMap<string, string | null>
  /**
   * What is stored, as read under the node lock before the write (null: none):
   * the first conditional store is made against it instead of reading it
   * again. If another instance stored one since, that store fails and the next
   * attempt reads what won.
   */
  storedBefore?: StoredVersion | null
}

/** Tries at a conditional store before the observation is stored over whatever is there. */
const STORE_ATTEMPTS = 3

export class NodeStateService {
  /** Live reads in flight, by node name. */
  private readonly reading = new Map<string, Promise<NodeObservation>>()
  /** Parsed stored observations, re-read only when the store's version of one changes. */
  private readonly storedObservations: ObservationCache

  constructor(private readonly options: NodeStateOptions) {
    this.storedObservations = new ObservationCache(options.store)
  }

  /**
   * The state of each node, from the store where it is at most maxAgeSeconds
   * old, else read live (at most `fanOut` nodes at a time). Never throws for
   * one node: failures are returned beside the states.
   */
  async statesOf(nodes: NodeRecord[], maxAgeSeconds: number): Promise<{ states: NodeState[]; failures: NodeFailure[] }> {
    const { clock, fanOut, maxNodesPerRequest } = this.options
    if (nodes.length > maxNodesPerRequest) {
      throw new ServiceError(
        'VALIDATION_FAILED',
        `this request addresses ${nodes.length} nodes; at most ${maxNodesPerRequest} are allowed at once (MAX_NODES_PER_REQUEST): narrow it with node or labelSelector`,
        ['node'],
      )
    }
    const stored = await this.storedObservations.read(nodes.map((n) => n.name))
    const now = clock().getTime()
    const failures: NodeFailure[] = []
    const states = await mapWithConcurrency(nodes, fanOut, async (node): Promise<NodeState> => {
      const last = stored.get(node.name)
      if (last && isFresh(last, now, maxAgeSeconds)) return { node, observation: last, stale: false }
      const started = performance.now()
      const readStartedAt = clock().toISOString()
      try {
        const observation = await this.observe(node, last)
        this.options.observer?.nodeRead(node.name, (performance.now() - started) / 1000, null)
        return { node, observation, stale: false }
      } catch (err) {
        const error = asNodeError(node, err)
        this.options.observer?.nodeRead(node.name, (performance.now() - started) / 1000, error.code)
        failures.push({ node: node.name, error })
        const observation = await this.recordFailure(node, last, error, readStartedAt)
        return { node, observation, stale: true }
      }
    })
    return { states, failures }
  }

  /** Reads the node live, records what changed, and stores the observation; `last`: what is stored of it, whose files are read with the listing at first contact. */
  observe(node: NodeRecord, last?: NodeObservation): Promise<NodeObservation> {
    // A second reader of a node being read (two fields of one query, two
    // requests) shares that read: queued behind it, an unreachable node would
    // cost each of them a whole connect timeout in turn.
    const inFlight = this.reading.get(node.name)
    if (inFlight) return inFlight
    const reading = (async () => {
      const agent = await this.options.agents.agentFor(node)
      if (last) agent.expectFiles(last.pods.map((p) => p.fileName))
      // In the node's turn: a write of this process in flight is not recorded as a change made elsewhere.
      return agent.withTurn(() => this.observeWith(node, agent))
    })().finally(() => {
      if (this.reading.get(node.name) === reading) this.reading.delete(node.name)
    })
    this.reading.set(node.name, reading)
    return reading
  }

  /**
   * The live read itself, for callers that already have the node's turn:
   * manifests, kubelet health and runtime state, recorded and stored.
   */
  async observeWith(node: NodeRecord, agent: NodeAgent): Promise<NodeObservation> {
    const started = performance.now()
    const readStartedAt = this.options.clock().toISOString()
    const [entries, kubelet, runtime] = await Promise.all([
      agent.listManifestDir(),
      agent.kubeletHealth().catch((err: unknown) => ({ available: false as const, reason: errorText(err) })),
      agent.runtimeStatus().catch((err: unknown) => ({ available: false as const, reason: errorText(err) })),
    ])
    const health: NodeHealth = {
      kubelet: kubelet.available ? kubelet.status : null,
      kubeletUnavailableReason: kubelet.available ? null : kubelet.reason,
      runtime: runtime.available ? runtime.pods : null,
      runtimeUnavailableReason: runtime.available ? null : runtime.reason,
    }
    return (await this.recordReading(node, entries, health, performance.now() - started, { store: true, authoritative: false, readStartedAt })).observation
  }

  /**
   * The write path's read: only the manifests (one listing), not the kubelet
   * or the runtime, whose last known state is kept. Each round trip saved here
   * is saved on every node of a rollout.
   */
  async readManifestsWith(node: NodeRecord, agent: NodeAgent): Promise<ManifestReading> {
    const started = performance.now()
    // From the cache: the conditional store after the write reads the same version, and need not parse it again.
    const [entries, stored] = await Promise.all([agent.listManifestDir(), this.storedObservations.readVersioned([node.name])])
    const storedBefore = stored.get(node.name) ?? null
    const last = storedBefore?.observation
    const health: NodeHealth = last
      ? { kubelet: last.kubelet, kubeletUnavailableReason: last.kubeletUnavailableReason, runtime: last.runtime, runtimeUnavailableReason: last.runtimeUnavailableReason }
      : { kubelet: null, kubeletUnavailableReason: 'not checked yet', runtime: null, runtimeUnavailableReason: 'not checked yet' }
    // Not stored yet: the write that follows stores the node's state once, after it.
    const reading = await this.recordReading(node, entries, health, performance.now() - started, { store: false })
    return { ...reading, storedBefore }
  }

  /**
   * After the write path changed one file, the node's state without reading
   * it again: the listing it read under the lock, with that file replaced
   * (bytes) or removed (null), linted and stored.
   */
  async recordFileChange(node: NodeRecord, reading: ManifestReading, fileName: string, bytes: Uint8Array | null, revision: RevisionRecord | null): Promise<NodeObservation> {
    const entries = reading.entries.filter((e) => e.name !== fileName)
    if (bytes !== null) entries.push({ name: fileName, kind: 'file', bytes, size: bytes.length })
    // The newest revisions as the reading recorded them, with the write's own: under the lock nobody
    // else writes this node, and a reader elsewhere records a revision only for bytes that differ from these.
    const revisions = new Map(reading.revisions)
    if (revision) revisions.set(podKeyString(revision), revision)
    const written = await this.recordReading(
      node,
      entries,
      reading.health,
      reading.observation.agent.latencyMs ?? 0,
      { store: true, authoritative: true, readStartedAt: reading.observation.observedAt ?? this.options.clock().toISOString(), storedBefore: reading.storedBefore },
      revisions,
    )
    return written.observation
  }

  private async recordReading(
    node: NodeRecord,
    entries: DirEntry[],
    health: NodeHealth,
    elapsedMs: number,
    opts: { store: false } | ({ store: true } & Omit<StoreContext, 'actors'>),
    knownRevisions?: Map<string, RevisionRecord>,
  ): Promise<ManifestReading> {
    const { clock } = this.options
    const { pods: found, findings } = lintManifestDir(entries, node.name)
    const modified = new Map(entries.map((e) => [e.name, e.modifiedAt]))
    const { pods: recorded, actors, revisions } = await this.recordChanges(node.name, found, knownRevisions)
    const pods = recorded.map((p) => {
      const modifiedAt = modified.get(p.fileName)
      return modifiedAt ? { ...p, modifiedAt } : p
    })
    const observedAt = clock().toISOString()
    const observation: NodeObservation = {
      node: node.name,
      observedAt,
      pods,
      findings,
      agent: { reachable: true, lastContactAt: observedAt, lastError: null, latencyMs: Math.round(elapsedMs * 100) / 100 },
      ...health,
    }
    if (opts.store) {
      await this.storeObservation(observation, { ...opts, actors })
      this.options.observer?.observed?.(observation)
    }
    return { observation, entries, health, revisions }
  }

  /**
   * Stores the observation after the one stored before it, with the events
   * between the two, conditionally on that one's version: of several readers
   * (instances sharing the store, or a query and the observer) that saw one
   * change, only the first to store it records its events. A reader that
   * lost re-reads what won and compares with that instead, unless what won
   * was read after this read began (then it is the newer state, and this
   * observation is only answered to its caller, not stored).
   */
  private async storeObservation(observation: NodeObservation, context: StoreContext): Promise<void> {
    const { store, clock } = this.options
    for (let attempt = 1; attempt <= STORE_ATTEMPTS; attempt++) {
      const stored =
        attempt === 1 && context.storedBefore !== undefined
          ? context.storedBefore ?? undefined
          : (await this.storedObservations.readVersioned([observation.node])).get(observation.node)
      const previous = stored?.observation ?? null
      if (attempt > 1 && !context.authoritative && previous && storedSince(previous, context.readStartedAt)) return
      const removedBy = await this.removers(previous, observation)
      const events = observationEvents(previous, observation, {
        at: clock().toISOString(),
        actorOf: (pod, change) => {
          const key = podKeyString({ node: observation.node, namespace: pod.namespace, name: pod.name })
          return (change === 'removed' ? removedBy.get(key) : context.actors.get(key)) ?? null
        },
      })
      const result = await store.putObservationIf(observation, stored?.version ?? null, events)
      if (result.stored) {
        if (result.events.length > 0) this.options.events?.recorded(result.events)
        return
      }
    }
    // Still moving after every attempt (readers racing on one node): the write path's state must land.
    if (context.authoritative) await store.putObservation(observation)
  }

  /**
   * Who removed the pods that were there before and are gone now, through the
   * service (a DELETE revision's actor); one store call, made only when a pod is gone.
   */
  private async removers(previous: NodeObservation | null, next: NodeObservation): Promise<Map<string, string | null>> {
    const removers = new Map<string, string | null>()
    if (!previous || !next.agent.reachable) return removers
    const present = new Set(next.pods.map((p) => `${p.namespace}/${p.name}`))
    const gone = previous.pods.filter((p) => !present.has(`${p.namespace}/${p.name}`)).map((p) => ({ node: next.node, namespace: p.namespace, name: p.name }))
    if (gone.length === 0) return removers
    for (const [key, revision] of await this.options.store.latestRevisions(gone)) {
      if (revision.action === 'DELETE') removers.set(key, revision.actor)
    }
    return removers
  }

  /**
   * Bytes on the node that the newest revision does not account for become
   * OBSERVED revisions. The newest revisions are the store's, or `known` when
   * it has every pod found (the write path's, from its reading under the lock).
   */
  private async recordChanges(
    node: string,
    found: FoundPod[],
    known?: Map<string, RevisionRecord>,
  ): Promise<{ pods: ObservedPod[]; actors: Map<string, string | null>; revisions: Map<string, RevisionRecord> }> {
    const { store, clock } = this.options
    const keys = found.map((p) => ({ node, namespace: p.namespace, name: p.name }))
    const latest = known && keys.every((key) => known.has(podKeyString(key))) ? known : await store.latestRevisions(keys)
    const revisions = new Map<string, RevisionRecord>()
    const actors = new Map<string, string | null>()
    const pods = await Promise.all(
      found.map(async (pod): Promise<ObservedPod> => {
        const key = { node, namespace: pod.namespace, name: pod.name }
        let revision: RevisionRecord | undefined = latest.get(podKeyString(key))
        if (!revision || revision.action === 'DELETE' || revision.hash !== pod.hash || revision.fileName !== pod.fileName) {
          revision = await store.appendRevision({
            ...key,
            hash: pod.hash,
            manifest: pod.text,
            fileName: pod.fileName,
            action: 'OBSERVED',
            actor: null,
            recordedAt: clock().toISOString(),
          })
        }
        actors.set(podKeyString(key), revision.actor)
        revisions.set(podKeyString(key), revision)
        return observedPod(pod, revision)
      }),
    )
    return { pods: pods.sort(byNamespaceAndName), actors, revisions }
  }

  private async recordFailure(node: NodeRecord, last: NodeObservation | undefined, error: ServiceError, readStartedAt: string): Promise<NodeObservation> {
    const observation: NodeObservation = {
      ...(last ?? emptyObservation(node.name)),
      agent: {
        reachable: false,
        lastContactAt: last?.agent.lastContactAt ?? null,
        lastError: `${error.code}: ${error.message}`,
        latencyMs: last?.agent.latencyMs ?? null,
      },
    }
    // Recording the failure is best effort: the store being down must not hide the node's data.
    await this.storeObservation(observation, { authoritative: false, readStartedAt, actors: new Map() }).catch(() => undefined)
    this.options.observer?.observed?.(observation)
    return observation
  }
}

export function observedPod(pod: Pick<FoundPod, 'namespace' | 'name' | 'fileName' | 'hash' | 'text'>, revision: RevisionRecord): ObservedPod {
  return {
    namespace: pod.namespace,
    name: pod.name,
    fileName: pod.fileName,
    hash: pod.hash,
    revision: revision.revision,
    managed: revision.action !== 'OBSERVED',
    manifest: pod.text,
  }
}

function emptyObservation(node: string): NodeObservation {
  return {
    node,
    observedAt: null,
    pods: [],
    findings: [],
    agent: { reachable: false, lastContactAt: null, lastError: null, latencyMs: null },
    kubelet: null,
    kubeletUnavailableReason: 'the node has not been read yet',
    runtime: null,
    runtimeUnavailableReason: 'the node has not been read yet',
  }
}

/**
 * The age a query allows for served state: its maxAgeSeconds, or the server's
 * default when it gives none. One rule for GraphQL and REST.
 */
export function maxAgeOf(maxAgeSeconds: number | null | undefined, fallback: number): number {
  if (maxAgeSeconds === null || maxAgeSeconds === undefined) return fallback
  if (!Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 0) {
    throw new ServiceError('VALIDATION_FAILED', `maxAgeSeconds must be a whole number of seconds, 0 or more (0 reads the node now); got ${maxAgeSeconds}`, ['maxAgeSeconds'])
  }
  return maxAgeSeconds
}

/** The observation was stored by a read that ended at or after this instant. */
function storedSince(obs: NodeObservation, instant: string): boolean {
  const at = obs.agent.reachable ? obs.observedAt : obs.agent.lastContactAt
  return at !== null && Date.parse(at) >= Date.parse(instant)
}

function isFresh(obs: NodeObservation, now: number, maxAgeSeconds: number): boolean {
  if (maxAgeSeconds <= 0 || obs.observedAt === null || !obs.agent.reachable) return false
  return now - Date.parse(obs.observedAt) <= maxAgeSeconds * 1000
}

function asNodeError(node: NodeRecord, err: unknown): ServiceError {
  if (isServiceError(err)) return err
  return new ServiceError('NODE_UNREACHABLE', `node ${node.name} could not be read: ${errorText(err)}`)
}


const byNamespaceAndName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): number =>
  a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name)
