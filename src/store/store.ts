// The service's own state, kept apart from the API server so that it survives
// when the API server does not. Two implementations (SQLite embedded, DynamoDB
// for serverless) pass one contract test suite (test/store/contract.ts).
//
// Every method is one round trip to the backing store, and the read methods
// take many keys at once: a GraphQL query over 1,000 nodes must make a
// constant number of store calls, not one per node.

import type { Finding } from '../manifest/types.ts'

export interface Label {
  key: string
  value: string
}

export type NodeKind = 'local' | 'ssh'

export interface NodeRecord {
  name: string
  kind: NodeKind
  host: string
  port: number
  user: string
  staticPodPath: string
  /** Pinned SSH host key (OpenSSH SHA256:... form); null: unverified. */
  hostKeyFingerprint: string | null
  /** The key the node presented on the last connection attempt. */
  observedHostKeyFingerprint: string | null
  labels: Label[]
  createdAt: string
  updatedAt: string
}

export const REVISION_ACTIONS = ['CREATE', 'UPDATE', 'DELETE', 'RESTART', 'ROLLBACK', 'OBSERVED'] as const
export type RevisionAction = (typeof REVISION_ACTIONS)[number]

export interface PodKey {
  node: string
  namespace: string
  name: string
}

export interface RevisionRecord extends PodKey {
  /** 1, 2, 3 ... per (node, namespace, name). */
  revision: number
  hash: string
  /** The manifest's exact content. For DELETE, the bytes that were removed. */
  manifest: string
  fileName: string
  action: RevisionAction
  /** Who wrote it through the service; null when it was found on the node. */
  actor: string | null
  recordedAt: string
}

export type NewRevision = Omit<RevisionRecord, 'revision'>

/** A static pod as last seen on its node. */
export interface ObservedPod {
  namespace: string
  name: string
  fileName: string
  hash: string
  revision: number
  /** false when the newest revision was found on the node rather than written by the service. */
  managed: boolean
  manifest: string
}

export interface AgentState {
  reachable: boolean
  lastContactAt: string | null
  lastError: string | null
  latencyMs: number | null
}

export interface KubeletState {
  healthy: boolean
  checkedAt: string
  message: string | null
}

export interface ContainerRuntimeState {
  name: string
  image: string | null
  state: string
  ready: boolean | null
  restartCount: number | null
}

export interface PodRuntimeState {
  namespace: string
  /** The static pod's name (not the <name>-<node> sandbox name). */
  name: string
  state: string
  containers: ContainerRuntimeState[]
  observedAt: string
  /**
   * The CRI sandbox the state is of, and when the runtime created it. The
   * kubelet recreates a static pod (a new sandbox) whenever its manifest
   * changes, so a sandbox id other than the one before a write is the new pod.
   * Absent in observations recorded before these fields existed.
   */
  sandboxId?: string
  sandboxCreatedAt?: string
}

/** What the service last saw on one node: one record per node. */
export interface NodeObservation {
  node: string
  /** When the manifests were last read successfully; null: never. */
  observedAt: string | null
  pods: ObservedPod[]
  findings: Finding[]
  agent: AgentState
  kubelet: KubeletState | null
  kubeletUnavailableReason: string | null
  /** Pod state from the container runtime; null when the node has none to ask. */
  runtime: PodRuntimeState[] | null
  runtimeUnavailableReason: string | null
}

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

export interface AuditEvent {
  id: string
  at: string
  actor: string
  action: string
  node: string | null
  target: string | null
  fromHash: string | null
  toHash: string | null
  /** OK, or the ErrorCode it failed with. */
  result: string
  message: string | null
  dryRun: boolean
}

export type NewAuditEvent = Omit<AuditEvent, 'id'>

export interface AuditQuery {
  node?: string | undefined
  /** Only events strictly older than this instant. */
  before?: string | undefined
  limit: number
}

export interface Store {
  /** Round trip that proves the store answers (for /readyz). */
  ping(): Promise<void>
  close(): Promise<void>

  listNodes(): Promise<NodeRecord[]>
  getNode(name: string): Promise<NodeRecord | null>
  /** Creates the node; ALREADY_EXISTS if the name is taken. */
  createNode(node: NodeRecord): Promise<void>
  /** Replaces an existing node; NOT_FOUND if there is none. */
  updateNode(node: NodeRecord): Promise<void>
  /** Forgets the node with its revisions and observation. false if it was unknown. */
  deleteNode(name: string): Promise<boolean>

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

  appendAudit(event: NewAuditEvent): Promise<AuditEvent>
  /** Newest first. */
  listAudit(query: AuditQuery): Promise<AuditEvent[]>
}

/** The map key of a PodKey in the results of listRevisions and latestRevisions. */
export const podKeyString = (k: PodKey): string => `${k.node}/${k.namespace}/${k.name}`

/**
 * Only the interface's fields are stored: a caller's extra properties must not
 * leak into the returned event or the backing store.
 */
export function pickAuditFields(e: NewAuditEvent): NewAuditEvent {
  return {
    at: e.at,
    actor: e.actor,
    action: e.action,
    node: e.node,
    target: e.target,
    fromHash: e.fromHash,
    toHash: e.toHash,
    result: e.result,
    message: e.message,
    dryRun: e.dryRun,
  }
}
