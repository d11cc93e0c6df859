// The service's own state, kept apart from the API server so that it survives
// when the API server does not. Two implementations (SQLite embedded, DynamoDB
// for serverless) pass one contract test suite (test/store/contract.ts).
//
// Every method is one round trip to the backing store, and the read methods
// take many keys at once: a GraphQL query over 1,000 nodes must make a
// constant number of store calls, not one per node.

import type { AuditEvent, EventRecord, EventType, JumpHostRecord, NewAuditEvent, NewEvent, NewRevision, NodeFacts, NodeObservation, NodeRecord, PodKey, RevisionRecord, WebhookRecord } from '../domain.ts'

/** A node's observation as stored, with the version of the write that stored it. */
export interface StoredObservation {
  /**
   * Replaced by every putObservation of the node, in any process sharing the
   * store (a random token, compared for equality only). null for an
   * observation stored before versions existed: it cannot be told unchanged.
   */
  version: string | null
  /** null when the caller already holds this version (getObservationsIfChanged). */
  observation: NodeObservation | null
}

export interface AuditQuery {
  node?: string | undefined
  /** Only events strictly older than this instant. */
  before?: string | undefined
  limit: number
}

export interface EventQuery {
  /** Only events with an id greater than this one (numerically). */
  after?: string | undefined
  /** Only events with an id smaller than this one (numerically). */
  before?: string | undefined
  /** Only this node's events. */
  node?: string | undefined
  /** Only these types; absent or empty: every type. */
  types?: readonly EventType[] | undefined
  limit: number
  /** newest: highest ids first (a listing); oldest: lowest first (replay after an id). */
  order: 'newest' | 'oldest'
}

/** What putObservationIf did: stored with the events it appended, or not stored because the version moved on. */
export type ConditionalObservationResult = { stored: true; events: EventRecord[] } | { stored: false }

/** How a webhook delivery ended, recorded on the webhook. */
export interface WebhookDeliveryOutcome {
  at: string
  /** HTTP status of the last attempt ("200", "500"), or the network error. */
  result: string
  /** The delivery was given up: failedDeliveries grows by one. */
  gaveUp: boolean
}

export interface Store {
  /** Round trip that proves the store answers (for /readyz). */
  ping(): Promise<void>
  close(): Promise<void>

  /** Every node, by name. The records may be shared with other callers and frozen (SQLite keeps them until the next commit): copy one to change it. */
  listNodes(): Promise<NodeRecord[]>
  getNode(name: string): Promise<NodeRecord | null>
  /** Creates the node; ALREADY_EXISTS if the name is taken. */
  createNode(node: NodeRecord): Promise<void>
  /**
   * Replaces what an admin sets of an existing node (address, key, path,
   * labels), leaving the node's facts as stored; NOT_FOUND if there is none.
   */
  updateNode(node: NodeRecord): Promise<void>
  /**
   * Records facts learnt from an SSH node, each only where given, without
   * touching anything else of the record (so an admin's updateNode made
   * meanwhile is never undone): a discovered staticPodPath only while the
   * record still discovers its path. Nothing happens for an unknown node.
   */
  recordNodeFacts(name: string, facts: NodeFacts): Promise<void>
  /**
   * Pins an SSH node's host key only if it has none, in one step (an admin's
   * updateNode made meanwhile is never undone), setting updatedAt to `at`
   * when it pins. Returns the node's pin after the call (the existing one when
   * it had one); null for an unknown or local node.
   */
  pinNodeHostKey(name: string, fingerprint: string, at: string): Promise<string | null>
  /** Forgets the node with its revisions and observation. false if it was unknown. */
  deleteNode(name: string): Promise<boolean>

  /** Every jump host, by name. Jump hosts and nodes are apart: a name may be both. */
  listJumpHosts(): Promise<JumpHostRecord[]>
  getJumpHost(name: string): Promise<JumpHostRecord | null>
  /**
   * Creates the jump host, or replaces what an admin sets of an existing one
   * (address, user, pinned key, via), leaving its observed key as stored.
   * Answers the record as stored now.
   */
  putJumpHost(jumpHost: JumpHostRecord): Promise<JumpHostRecord>
  /** Records the key the jump host presented, touching nothing else; nothing happens for an unknown one. */
  recordJumpHostFacts(name: string, facts: { observedHostKeyFingerprint: string }): Promise<void>
  /** false if it was unknown. */
  deleteJumpHost(name: string): Promise<boolean>

  /**
   * Appends the next revision of (node, namespace, name), numbered one past the
   * newest. Two concurrent appends never get the same number: with
   * expectedLatest given (0 for none yet), the append fails with CONFLICT unless
   * the newest revision still has that number.
   */
  appendRevision(rev: NewRevision, expectedLatest?: number): Promise<RevisionRecord>
  /** Newest first, at most limit, for each key asked. One round trip for all keys. */
  listRevisions(keys: PodKey[], limit: number): Promise<Map<string, RevisionRecord[]>>
  getRevision(key: PodKey, revision: number): Promise<RevisionRecord | null>
  /** The newest revision of each key asked (absent keys are not in the map). */
  latestRevisions(keys: PodKey[]): Promise<Map<string, RevisionRecord>>

  putObservation(obs: NodeObservation): Promise<void>
  /** The observation of each node asked; nodes never observed are not in the map. */
  getObservations(nodes: string[]): Promise<Map<string, NodeObservation>>
  /**
   * The version of each node's stored observation, with the observation only
   * where that version is not the one in `known` (the caller's copy is
   * current): a reader holding parsed observations learns which changed
   * without reading or parsing the others. Nodes never observed are not in the map.
   */
  getObservationsIfChanged(nodes: string[], known: ReadonlyMap<string, string>): Promise<Map<string, StoredObservation>>

  /**
   * Stores the observation only if the node's stored observation still has
   * expectedVersion (null: none is stored, or one stored before versions
   * existed), and appends the events in the same step: of several instances
   * that observed one change, only the first to store it records its events.
   * The events get increasing ids in the order given.
   */
  putObservationIf(obs: NodeObservation, expectedVersion: string | null, events: readonly NewEvent[]): Promise<ConditionalObservationResult>
  /**
   * Appends events, with increasing ids in the order given, skipping any
   * whose onceKey is already stored (by any instance). Answers the events
   * appended.
   */
  appendEvents(events: readonly NewEvent[]): Promise<EventRecord[]>
  listEvents(query: EventQuery): Promise<EventRecord[]>
  /** Forgets events recorded before this instant (their `at`); answers how many. Bounded work per call is allowed: call again until 0. */
  pruneEvents(before: string): Promise<number>

  /** ALREADY_EXISTS if the id is taken. */
  createWebhook(webhook: WebhookRecord): Promise<void>
  /** Oldest first. */
  listWebhooks(): Promise<WebhookRecord[]>
  /** false if it was unknown. */
  deleteWebhook(id: string): Promise<boolean>
  /** Records a delivery's end on the webhook (nothing happens for an unknown one). */
  recordWebhookDelivery(id: string, outcome: WebhookDeliveryOutcome): Promise<void>

  appendAudit(event: NewAuditEvent): Promise<AuditEvent>
  /** Newest first. */
  listAudit(query: AuditQuery): Promise<AuditEvent[]>
}
