// The records the whole program speaks of: nodes, the static pods seen on them,
// their revisions, what the service last observed on a node (agent, kubelet,
// container runtime), and audit events. Plain data with no I/O: the store
// keeps them, the services make them, the transports show them.

import type { Finding } from './manifest/types.ts'

export interface Label {
  key: string
  value: string
}

export type NodeKind = NodeRecord['kind']

/**
 * Where a node's staticPodPath comes from.
 * - given: registered with it (or, for the local node, configured);
 * - discover: none was given, so the node's kubelet config is read at first
 *   contact; kubeadm's path stands in until then (and if the config names none);
 * - discovered: read from the node's kubelet config.
 */
type StaticPodPathSource = 'given' | 'discover' | 'discovered'

interface NodeRecordCommon {
  name: string
  /** The directory the kubelet reads manifests from, as far as the service knows now (see staticPodPathFrom). */
  staticPodPath: string
  staticPodPathFrom: StaticPodPathSource
  labels: Label[]
  createdAt: string
  updatedAt: string
}

/** The machine the service runs on, read through its own filesystem (LOCAL_NODE_PATH). */
export interface LocalNodeRecord extends NodeRecordCommon {
  kind: 'local'
}

/** A node reached over SSH. */
export interface SshNodeRecord extends NodeRecordCommon {
  kind: 'ssh'
  ssh: SshTarget
}

/**
 * How the service gets root on an SSH node once logged in: NONE, it logs in
 * as root; SUDO, it logs in as `user` and runs the SFTP server and its fixed
 * commands through `sudo -n`.
 */
export type Privilege = 'NONE' | 'SUDO'

/** How an SSH node is reached and recognised. */
export interface SshTarget {
  /** Resolved where the connection starts: here, or on the jump host (via), as OpenSSH does. */
  host: string
  port: number
  user: string
  privilege: Privilege
  /** The SFTP server to start through sudo on a SUDO node; null: the first of the usual paths found there. */
  sftpServer: string | null
  /** The name of the jump host the node is reached through (like ssh -J); null: directly. */
  via: string | null
  /** Pinned SSH host key (OpenSSH SHA256:... form); null: unverified, nothing is sent to the node. */
  hostKeyFingerprint: string | null
  /** The key the node presented on the last connection attempt (a node fact, for an admin to compare and pin). */
  observedHostKeyFingerprint: string | null
}

export type NodeRecord = LocalNodeRecord | SshNodeRecord

/**
 * What the service learns from a node itself, recorded field by field beside
 * what an admin set (never over it): the host key it presents, and the
 * staticPodPath its kubelet config names (kept only while the record says discover).
 */
export interface NodeFacts {
  observedHostKeyFingerprint?: string
  discoveredStaticPodPath?: string
}

/**
 * A bastion in front of nodes (OpenSSH's ProxyJump): the service keeps one
 * connection to it and opens one forwarded channel per node behind it. What
 * an admin sets (putJumpHost) and the one fact learnt from it (the key it
 * presents) are stored apart, like a node's.
 */
export interface JumpHostRecord {
  name: string
  /** Resolved where its connection starts: here, or on the jump host in front of it (via). */
  host: string
  port: number
  user: string
  /** Pinned SSH host key (OpenSSH SHA256:... form); null: nothing is sent through it. */
  hostKeyFingerprint: string | null
  /** The key it presented on the last connection attempt (a fact, for an admin to compare and pin). */
  observedHostKeyFingerprint: string | null
  /** Another jump host in front of this one (a chain, like ssh -J a,b: b's via is a); null: reached directly. */
  via: string | null
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
  /** The file's modification time on the node (its clock), from the listing; absent in older observations. */
  modifiedAt?: string | null
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

/**
 * How a container attempt ended, as the container runtime reports it (CRI
 * ContainerStatus: exit_code, reason, finished_at; k8s.io/cri-api
 * pkg/apis/runtime/v1/api.proto). null where the runtime did not say.
 */
export interface ContainerTermination {
  exitCode: number | null
  /** As the runtime words it: Error, Completed, OOMKilled, StartError ... */
  reason: string | null
  finishedAt: string | null
}

export interface ContainerRuntimeState {
  name: string
  image: string | null
  state: string
  ready: boolean | null
  restartCount: number | null
  // What the container runtime tells of the current (newest) attempt
  // (src/agents/crictl.ts). Optional: observations recorded before these
  // fields existed, and mirror pods' containers, have none of them. The
  // exit code and times come from `crictl inspect`, which a runtime read
  // asks only for containers that are not running or have restarted; for
  // the others they are null.
  /** The runtime's id of the current attempt. */
  containerId?: string | null
  /** The CRI attempt number (metadata.attempt): 0 for the first run, one more per restart. */
  attempt?: number | null
  exitCode?: number | null
  /** As the runtime words it: Error, Completed, OOMKilled, StartError ... */
  reason?: string | null
  message?: string | null
  startedAt?: string | null
  finishedAt?: string | null
  /**
   * How the attempt before the current one ended: the exited container of the
   * same name in the same sandbox, attempt - 1 or else the newest older one.
   * null when the runtime lists none (a first attempt, or one removed by the
   * kubelet's garbage collection); its fields are null when it is listed but
   * could not be inspected.
   */
  lastTermination?: ContainerTermination | null
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

/** The runtime's state of one of an observation's static pods (its newest sandbox); null when the runtime lists none (or was not asked). */
export function runtimeOfPod(observation: NodeObservation, pod: { namespace: string; name: string }): PodRuntimeState | null {
  return observation.runtime?.find((p) => p.namespace === pod.namespace && p.name === pod.name) ?? null
}

/**
 * The one rule for "a static pod is ready" (the ready gauge, events): its
 * sandbox READY, with containers, every one RUNNING and not reported unready
 * (crictl knows no probes: ready may be null). No runtime state: not ready.
 */
export function isPodReady(runtime: PodRuntimeState | null): boolean {
  if (!runtime || runtime.state !== 'READY' || runtime.containers.length === 0) return false
  return runtime.containers.every((c) => c.state === 'RUNNING' && c.ready !== false)
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

/** The map key of a PodKey in the results of listRevisions and latestRevisions. */
export const podKeyString = (k: PodKey): string => `${k.node}/${k.namespace}/${k.name}`

/** What the service tells subscribers and webhooks about (the contract's EventType). */
export const EVENT_TYPES = [
  'STATIC_POD_ADDED',
  'STATIC_POD_CHANGED',
  'STATIC_POD_REMOVED',
  'POD_READY',
  'POD_NOT_READY',
  'CRASH_LOOP',
  'FINDING_ADDED',
  'FINDING_RESOLVED',
  'NODE_UNREACHABLE',
  'NODE_REACHABLE',
  'CERTIFICATE_EXPIRES_SOON',
  'ROLLOUT_STARTED',
  'ROLLOUT_FINISHED',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** Something that happened on a node, as stored: ids increase in the order events are stored. */
export interface EventRecord {
  /** A decimal integer, increasing (compare as numbers: "10" is after "9"). */
  id: string
  at: string
  type: EventType
  node: string
  namespace: string | null
  name: string | null
  message: string
  fromHash: string | null
  toHash: string | null
  /** Who made the change through the service; null when it was seen on the node. */
  actor: string | null
}

export type NewEvent = Omit<EventRecord, 'id'> & {
  /**
   * At most one event with this key is ever stored (in any instance sharing
   * the store): a second append of it is skipped. For events that are about a
   * state rather than a transition of observations (a certificate entering
   * its warning window: once per file and expiry).
   */
  onceKey?: string
}

/** A webhook as stored. The secret is sealed by the webhook service; the store never sees it in clear. */
export interface WebhookRecord {
  id: string
  url: string
  /** Empty: every type. */
  types: EventType[]
  /** Node name globs; empty: every node. */
  nodes: string[]
  /** The secret, encrypted by the webhook service (opaque to the store). */
  sealedSecret: string
  createdAt: string
  createdBy: string
  lastDeliveryAt: string | null
  /** HTTP status of the last attempt, or the network error. */
  lastResult: string | null
  /** Deliveries given up after the last retry. */
  failedDeliveries: number
}
