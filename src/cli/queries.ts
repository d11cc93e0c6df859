// The GraphQL documents the client sends (schema/*.graphql), and the shapes it
// reads back. -o json and -o yaml print the answers to these as they come.

/** A static pod as `get pods -o json|yaml` prints it: the StaticPod fields a script may want, the manifest included. */
export const POD_FIELDS = `
  id nodeName namespace name mirrorPodName fileName path hash revision managed observedAt stale sync
  containers { name image init }
  runtime { state observedAt containers { name image state ready restartCount exitCode reason startedAt finishedAt } }
  pod
  manifest
  history(limit: 1) { revision action actor hash recordedAt }
`

/** What the table of `get pods` shows (pod: only for -l, which selects on its labels). */
const podRowFields = (withPod: boolean) => `
  id nodeName namespace name hash revision managed stale sync
  containers { name image }
  runtime { state containers { name state restartCount reason } }
  ${withPod ? 'pod' : ''}
  history(limit: 1) { recordedAt }
`

export const podsQuery = (full: boolean, withPod: boolean) =>
  `query staticpodctlGetPods($node: String, $namespace: String, $maxAge: Int) {
  staticPods(node: $node, namespace: $namespace, maxAgeSeconds: $maxAge) { ${full ? POD_FIELDS : podRowFields(withPod)} }
}`

export const podsOnNodesQuery = (full: boolean, withPod: boolean) =>
  `query staticpodctlGetPodsOnNodes($selector: String, $namespace: String, $maxAge: Int) {
  nodes(labelSelector: $selector) { name staticPods(namespace: $namespace, maxAgeSeconds: $maxAge) { ${full ? POD_FIELDS : podRowFields(withPod)} } }
}`

export const podQuery = (full: boolean) =>
  `query staticpodctlGetPod($node: String!, $namespace: String, $name: String!, $maxAge: Int) {
  staticPod(node: $node, namespace: $namespace, name: $name, maxAgeSeconds: $maxAge) { ${full ? POD_FIELDS : podRowFields(false)} }
}`

const NODE_FIELDS = `
  name kind host port user staticPodPath privilege via hostKeyFingerprint observedHostKeyFingerprint
  labels { key value }
  agent { reachable lastContactAt lastError latencyMs }
  kubelet { healthy checkedAt message }
  kubeletUnavailableReason runtimeUnavailableReason observedAt
  findings { code fileName message }
  staticPods(maxAgeSeconds: $maxAge) { id }
`

// One query shows one state of a node: staticPods(maxAgeSeconds: 0) makes every field of the node live.
export const nodesQuery = `query staticpodctlGetNodes($selector: String, $maxAge: Int) { nodes(labelSelector: $selector) { ${NODE_FIELDS} } }`
export const nodeQuery = `query staticpodctlGetNode($name: String!, $maxAge: Int) { node(name: $name) { ${NODE_FIELDS} } }`

export interface ContainerRuntime {
  name: string
  image?: string | null
  state: string
  ready?: boolean | null
  restartCount?: number | null
  exitCode?: number | null
  reason?: string | null
  message?: string | null
  startedAt?: string | null
  finishedAt?: string | null
  lastTermination?: { exitCode: number | null; reason: string | null; finishedAt: string | null } | null
}

export interface PodRow {
  id: string
  nodeName: string
  namespace: string
  name: string
  hash: string
  revision: number
  managed: boolean
  stale: boolean
  sync: string
  fileName?: string
  path?: string
  containers: Array<{ name: string; image: string; init?: boolean }>
  runtime: { state: string; observedAt?: string; containers: ContainerRuntime[] } | null
  pod?: { metadata?: { labels?: Record<string, string> } } & Record<string, unknown>
  history: Array<{ recordedAt: string; revision?: number; action?: string; actor?: string | null; hash?: string }>
}

export interface NodeRow {
  name: string
  kind: 'LOCAL' | 'SSH'
  host: string
  port: number
  user: string
  staticPodPath: string
  privilege: string
  via: string | null
  hostKeyFingerprint: string | null
  observedHostKeyFingerprint: string | null
  labels: Array<{ key: string; value: string }>
  agent: { reachable: boolean; lastContactAt: string | null; lastError: string | null; latencyMs: number | null }
  kubelet: { healthy: boolean; checkedAt: string; message: string | null } | null
  kubeletUnavailableReason: string | null
  runtimeUnavailableReason: string | null
  observedAt: string | null
  findings: Array<{ code: string; fileName: string | null; message: string }>
  staticPods: Array<{ id: string }>
}

export const describePodQuery = `query staticpodctlDescribePod($node: String!, $namespace: String, $name: String!) {
  staticPod(node: $node, namespace: $namespace, name: $name, maxAgeSeconds: 0) {
    id nodeName namespace name mirrorPodName fileName path hash revision managed observedAt stale sync
    containers { name image init }
    runtime { state observedAt containers { name image state ready restartCount exitCode reason message startedAt finishedAt lastTermination { exitCode reason finishedAt } } }
    diagnosis { code severity message evidence }
    certificates { path referencedBy subject notAfter daysLeft }
    history(limit: 5) { revision action actor hash recordedAt }
    node { kind findings { code fileName message } }
  }
}`

export const describeNodeQuery = `query staticpodctlDescribeNode($name: String!, $maxAge: Int = 0) {
  node(name: $name) { ${NODE_FIELDS} kubernetes { ready kubeletVersion internalIP unschedulable } diagnosis { code severity message evidence } }
}`

export const logsQuery = `query staticpodctlLogs($node: String!, $namespace: String, $name: String!, $container: String, $previous: Boolean, $tail: Int, $since: Int, $limitBytes: Int) {
  staticPod(node: $node, namespace: $namespace, name: $name, maxAgeSeconds: 0) {
    logs(container: $container, previous: $previous, tailLines: $tail, sinceSeconds: $since, limitBytes: $limitBytes) { container previous lines truncated source }
  }
}`

export const manifestQuery = `query staticpodctlManifest($node: String!, $namespace: String, $name: String!) {
  staticPod(node: $node, namespace: $namespace, name: $name, maxAgeSeconds: 0) { namespace name fileName hash revision manifest }
}`

export const historyQuery = `query staticpodctlHistory($node: String!, $namespace: String, $name: String!, $limit: Int) {
  staticPod(node: $node, namespace: $namespace, name: $name, maxAgeSeconds: 0) {
    namespace name hash revision
    history(limit: $limit) { revision action actor hash recordedAt manifest }
  }
}`

const PAYLOAD_POD = 'staticPod { id nodeName namespace name hash revision }'
const USER_ERRORS = 'userErrors { code message field }'

export const updateMutation = `mutation staticpodctlEdit($input: UpdateStaticPodInput!) {
  updateStaticPod(input: $input) { ${PAYLOAD_POD} previousHash dryRun rolledBack changed diff ${USER_ERRORS} }
}`

export const rollbackMutation = `mutation staticpodctlUndo($input: RollbackStaticPodInput!) {
  rollbackStaticPod(input: $input) { ${PAYLOAD_POD} previousHash dryRun rolledBack changed diff ${USER_ERRORS} }
}`

export const restartMutation = `mutation staticpodctlRestart($input: StaticPodRefInput!) {
  restartStaticPod(input: $input) { ${PAYLOAD_POD} previousHash dryRun rolledBack changed diff ${USER_ERRORS} }
}`

export const deleteMutation = `mutation staticpodctlDelete($input: StaticPodRefInput!) {
  deleteStaticPod(input: $input) { deleted previousHash dryRun ${USER_ERRORS} }
}`

const ROLLOUT_PAYLOAD = `rolloutId results { node status diff error { code message field } staticPod { id namespace name hash revision } } ${USER_ERRORS}`

export const applyMutation = `mutation staticpodctlApply($input: ApplyToNodesInput!) { applyStaticPodToNodes(input: $input) { ${ROLLOUT_PAYLOAD} } }`
export const patchMutation = `mutation staticpodctlPatch($input: PatchOnNodesInput!) { patchStaticPodOnNodes(input: $input) { ${ROLLOUT_PAYLOAD} } }`

export interface UserErrorOut {
  code: string
  message: string
  field: string[] | null
}

export interface StaticPodPayload {
  staticPod: { id: string; nodeName: string; namespace: string; name: string; hash: string; revision: number } | null
  previousHash: string | null
  dryRun: boolean
  rolledBack: boolean
  changed: boolean
  diff: string | null
  userErrors: UserErrorOut[]
}

interface NodeResult {
  node: string
  status: 'APPLIED' | 'UNCHANGED' | 'FAILED' | 'SKIPPED' | 'WOULD_APPLY' | 'ROLLED_BACK'
  diff: string | null
  error: UserErrorOut | null
  staticPod: { id: string; namespace: string; name: string; hash: string; revision: number } | null
}

export interface RolloutPayload {
  rolloutId: string | null
  results: NodeResult[]
  userErrors: UserErrorOut[]
}

const ROLLOUT_FIELDS = `id kind actor target hash strategy maxUnavailable readyTimeoutSeconds autoRollback dryRun state startedAt finishedAt messages
  nodes { node phase status message startedAt finishedAt error { code message field } }`

export const rolloutQuery = `query staticpodctlRollout($id: ID!) { rollout(id: $id) { ${ROLLOUT_FIELDS} } }`
export const rolloutSubscription = `subscription staticpodctlRolloutStatus($id: ID!) { rollout(id: $id) { ${ROLLOUT_FIELDS} } }`
export const activeRolloutsQuery = `query staticpodctlActiveRollouts { rollouts(active: true) { id target startedAt } }`
export const rolloutsQuery = `query staticpodctlRollouts($active: Boolean) { rollouts(active: $active) { ${ROLLOUT_FIELDS} } }`

export interface RolloutNode {
  node: string
  phase: 'PENDING' | 'WRITING' | 'WAITING_FOR_READY' | 'ROLLING_BACK' | 'DONE'
  status: NodeResult['status'] | null
  message: string | null
  startedAt: string | null
  finishedAt: string | null
  error: UserErrorOut | null
}

export interface Rollout {
  id: string
  kind: 'APPLY' | 'PATCH'
  actor: string
  target: string
  hash: string
  strategy: string
  maxUnavailable: number
  readyTimeoutSeconds: number
  autoRollback: boolean
  dryRun: boolean
  state: 'RUNNING' | 'SUCCEEDED' | 'FAILED'
  startedAt: string
  finishedAt: string | null
  messages: string[]
  nodes: RolloutNode[]
}

// Read live: findings are of the node state the same query reads (staticPods with maxAgeSeconds: 0).
export const lintQuery = `query staticpodctlLint($selector: String) { nodes(labelSelector: $selector) { name staticPods(maxAgeSeconds: 0) { id } findings { code fileName message } } }`
export const lintNodeQuery = `query staticpodctlLintNode($name: String!) { node(name: $name) { name staticPods(maxAgeSeconds: 0) { id } findings { code fileName message } } }`

const EVENT_FIELDS = 'id at type node namespace name message fromHash toHash actor'
export const eventsQuery = `query staticpodctlEvents($node: String, $types: [EventType!], $limit: Int, $before: ID) {
  events(node: $node, types: $types, limit: $limit, before: $before) { ${EVENT_FIELDS} }
}`
export const eventsSubscription = `subscription staticpodctlWatchEvents($nodes: [String!], $types: [EventType!], $after: ID) {
  events(nodes: $nodes, types: $types, after: $after) { ${EVENT_FIELDS} }
}`

export interface EventOut {
  id: string
  at: string
  type: string
  node: string
  namespace: string | null
  name: string | null
  message: string
  fromHash: string | null
  toHash: string | null
  actor: string | null
}

export const auditQuery = `query staticpodctlAudit($node: String, $limit: Int, $before: DateTime) {
  auditEvents(node: $node, limit: $limit, before: $before) { id at actor action node target fromHash toHash result message dryRun }
}`

export interface AuditOut {
  id: string
  at: string
  actor: string
  action: string
  node: string | null
  target: string | null
  fromHash: string | null
  toHash: string | null
  result: string
  message: string | null
  dryRun: boolean
}

export const completionNodesQuery = `query staticpodctlCompleteNodes { nodes { name } }`
export const completionPodsQuery = `query staticpodctlCompletePods($node: String) { staticPods(node: $node) { name } }`
