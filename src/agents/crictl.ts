// Static pod state from the container runtime, read with crictl, which keeps
// working when the API server does not. Pure: the local agent runs crictl with
// execFile, the SSH agent over an exec channel, and both hand the two outputs
// to parseCrictl.
//
// Shapes are crictl's protobuf JSON (`crictl pods -o json` is {"items": [...]},
// `crictl ps -a -o json` is {"containers": [...]}; int64 timestamps are
// nanosecond strings). Fields crictl adds in later versions are ignored.
//
// `crictl ps` has no exit codes; `crictl inspect -q -o json <id>...` does
// (cmd/crictl/container.go in kubernetes-sigs/cri-tools: containerStatus,
// marshalContainerStatus; cmd/crictl/util.go: outputStatusData). Each id gives
// {"status": <ContainerStatus>} (with "info" too unless -q: containerd's
// verbose info holds the whole OCI spec, kilobytes per container, hence -q).
// ContainerStatus is the protobuf JSON of k8s.io/cri-api
// pkg/apis/runtime/v1/api.proto (id, metadata, state, createdAt, startedAt,
// finishedAt, exitCode, image, imageRef, reason, message, labels, annotations,
// mounts, logPath, ...), except that crictl rewrites the three times as
// RFC 3339 strings in the node's local zone, and the zero time
// ("0001-01-01T00:00:00Z") for a start or finish that did not happen. Since
// crictl 1.31 one id prints that object and several print an array of them;
// before, each id's object was printed on its own, one after another. All
// three are read. A runtime read asks for it once, for at most
// CRICTL_INSPECT_MAX_IDS containers, and only when some container is not
// running or has restarted: a node whose containers all run their first
// attempt costs the two listings and nothing more.

import * as z from 'zod'
import type { ContainerRuntimeState, ContainerTermination, PodRuntimeState } from '../domain.ts'
import { CONFIG_SOURCE_ANNOTATION } from '../kubelet-facts.ts'

/** The fixed argv the agents run (never through a shell). */
export const CRICTL_PODS_ARGS = ['pods', '-o', 'json'] as const
export const CRICTL_CONTAINERS_ARGS = ['ps', '-a', '-o', 'json'] as const
/** The start of `crictl inspect`'s argv; container ids follow (crictlInspectArgs). */
export const CRICTL_INSPECT_PREFIX = ['inspect', '-q', '-o', 'json'] as const
/** The start of `crictl logs`' argv; bounds and one container id follow (crictlLogsArgs). */
export const CRICTL_LOGS_PREFIX = ['logs', '--timestamps'] as const
/** One inspect call names at most this many containers (a command line stays short; a crash-looping fleet stays cheap). */
export const CRICTL_INSPECT_MAX_IDS = 64
/** crictl's JSON for a busy node is a few MB; anything past this is not crictl (the agents stop reading there). */
export const CRICTL_MAX_OUTPUT_BYTES = 64 * 1024 * 1024

/** What a CRI runtime's container ids look like (containerd and CRI-O: 64 hex digits); nothing else reaches a command line. */
const CONTAINER_ID = /^[0-9a-f]{12,128}$/

const POD_NAME_LABEL = 'io.kubernetes.pod.name'
const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace'
const CONTAINER_NAME_LABEL = 'io.kubernetes.container.name'
const POD_UID_LABEL = 'io.kubernetes.pod.uid'
const RESTART_COUNT_ANNOTATION = 'io.kubernetes.container.restartCount'

const stringMap = z.record(z.string(), z.string()).nullish().transform((m) => m ?? {})
const nanoseconds = z.union([z.string(), z.number()]).nullish().transform((v) => toBigInt(v))

const sandboxSchema = z.object({
  id: z.string(),
  metadata: z
    .object({
      name: z.string().nullish(),
      uid: z.string().nullish(),
      namespace: z.string().nullish(),
      attempt: z.number().nullish(),
    })
    .nullish(),
  state: z.string().nullish(),
  createdAt: nanoseconds,
  labels: stringMap,
  annotations: stringMap,
})

const containerSchema = z.object({
  id: z.string(),
  podSandboxId: z.string(),
  metadata: z.object({ name: z.string().nullish(), attempt: z.number().nullish() }).nullish(),
  image: z.object({ image: z.string().nullish(), userSpecifiedImage: z.string().nullish() }).nullish(),
  imageRef: z.string().nullish(),
  state: z.string().nullish(),
  createdAt: nanoseconds,
  labels: stringMap,
  annotations: stringMap,
})

/** A time as crictl inspect prints it: RFC 3339 (nanoseconds, local zone); older crictl printed int64 nanoseconds. */
const inspectTime = z.union([z.string(), z.number()]).nullish()

const inspectStatusSchema = z.object({
  id: z.string(),
  state: z.string().nullish(),
  startedAt: inspectTime,
  finishedAt: inspectTime,
  exitCode: z.number().int().nullish(),
  reason: z.string().nullish(),
  message: z.string().nullish(),
})
const inspectDocumentSchema = z.object({ status: inspectStatusSchema.nullish() })

const podsOutputSchema = z.object({ items: z.array(sandboxSchema).nullish().transform((a) => a ?? []) })
const containersOutputSchema = z.object({ containers: z.array(containerSchema).nullish().transform((a) => a ?? []) })

type Sandbox = z.infer<typeof sandboxSchema>
type Container = z.infer<typeof containerSchema>
type InspectStatus = z.infer<typeof inspectStatusSchema>

const SANDBOX_STATES: Record<string, string> = { SANDBOX_READY: 'READY', SANDBOX_NOTREADY: 'NOTREADY' }
const CONTAINER_STATES: Record<string, string> = {
  CONTAINER_RUNNING: 'RUNNING',
  CONTAINER_EXITED: 'TERMINATED',
  CONTAINER_CREATED: 'CREATED',
}

export class CrictlOutputError extends Error {
  override readonly name = 'CrictlOutputError'
}

/**
 * The static pods of nodeName as the runtime runs them: for each pod, its
 * newest sandbox and, per container name, the newest container in it.
 *
 * A sandbox belongs to a static pod when its pod name is `<name>-<node
 * lowercased>` (how the kubelet names static pods and their mirrors); the
 * suffix is stripped with the known node name, since names may contain '-'.
 * Sandboxes whose annotations say they came from the API server are left out.
 * Throws CrictlOutputError when an output is not crictl's JSON.
 */
export function parseCrictl(podsJson: string, containersJson: string, nodeName: string, now: Date): PodRuntimeState[] {
  return readCrictl(podsJson, containersJson, nodeName, now).pods
}

/** Where one container attempt of a static pod is, for its log. */
export interface ContainerAttempt {
  containerId: string
  attempt: number
  /** The pod's UID (its sandbox's metadata.uid): the kubelet's log directory is named with it. */
  podUid: string | null
}

/** The two listings read: the pods as they stand, and what would add the detail of `crictl inspect`. */
export interface CrictlReading {
  /** As parseCrictl returns them: ids and attempts, with no exit codes or times yet. */
  pods: PodRuntimeState[]
  /**
   * The containers `crictl inspect` is wanted for, most telling first: current
   * attempts that are not running, then the attempts before restarted ones,
   * then restarted running ones; at most CRICTL_INSPECT_MAX_IDS. Empty when
   * every container runs its first attempt.
   */
  inspectIds: string[]
  /** The pods with what `crictl inspect -q -o json <inspectIds>` printed (throws CrictlOutputError when that is not its JSON). */
  withInspect(inspectOutput: string): PodRuntimeState[]
  /**
   * The container of a static pod (its name, not the sandbox's) in its newest
   * sandbox: the current attempt, or with previous the one before it
   * (attempt - 1, else the newest older one). null when there is none.
   */
  locate(namespace: string, name: string, container: string, previous: boolean): ContainerAttempt | null
}

interface PodContainers {
  namespace: string
  name: string
  sandbox: Sandbox
  /** Per container name, newest attempt first. */
  attempts: Map<string, Container[]>
}

/** Reads the two listings (throws CrictlOutputError when one is not crictl's JSON). */
export function readCrictl(podsJson: string, containersJson: string, nodeName: string, now: Date): CrictlReading {
  const sandboxes = parseOutput(podsJson, podsOutputSchema, 'crictl pods').items
  const containers = parseOutput(containersJson, containersOutputSchema, 'crictl ps').containers
  const suffix = `-${nodeName.toLowerCase()}`
  const observedAt = now.toISOString()

  const newestSandboxByPod = new Map<string, { namespace: string; name: string; sandbox: Sandbox }>()
  for (const sandbox of sandboxes) {
    const podName = sandbox.labels[POD_NAME_LABEL] ?? sandbox.metadata?.name
    const namespace = sandbox.labels[POD_NAMESPACE_LABEL] ?? sandbox.metadata?.namespace
    if (!podName || !namespace || !podName.endsWith(suffix) || podName.length === suffix.length) continue
    const source = sandbox.annotations[CONFIG_SOURCE_ANNOTATION]
    if (source !== undefined && source !== 'file') continue
    const key = `${namespace}/${podName}`
    const known = newestSandboxByPod.get(key)
    if (!known || sandbox.createdAt > known.sandbox.createdAt) {
      newestSandboxByPod.set(key, { namespace, name: podName.slice(0, -suffix.length), sandbox })
    }
  }

  const containersBySandbox = new Map<string, Container[]>()
  for (const container of containers) {
    const list = containersBySandbox.get(container.podSandboxId) ?? []
    list.push(container)
    containersBySandbox.set(container.podSandboxId, list)
  }

  const pods: PodContainers[] = []
  for (const { namespace, name, sandbox } of newestSandboxByPod.values()) {
    pods.push({ namespace, name, sandbox, attempts: attemptsByName(containersBySandbox.get(sandbox.id) ?? []) })
  }
  pods.sort((a, b) => compareText(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`))

  const view = (detail: Map<string, InspectStatus>): PodRuntimeState[] =>
    pods.map(({ namespace, name, sandbox, attempts }) => ({
      namespace,
      name,
      state: SANDBOX_STATES[sandbox.state ?? ''] ?? 'UNKNOWN',
      containers: [...attempts.values()].map((list) => toContainerState(list, detail)),
      observedAt,
      sandboxId: sandbox.id,
      sandboxCreatedAt: nanosecondsToIso(sandbox.createdAt),
    }))

  return {
    pods: view(new Map()),
    inspectIds: inspectIdsOf(pods),
    withInspect: (inspectOutput) => view(parseInspect(inspectOutput)),
    locate(namespace, name, containerName, previous) {
      const pod = pods.find((p) => p.namespace === namespace && p.name === name)
      const list = pod?.attempts.get(containerName)
      const current = list?.[0]
      if (!pod || !list || !current) return null
      const wanted = previous ? previousAttempt(list) : current
      if (!wanted) return null
      return { containerId: wanted.id, attempt: wanted.metadata?.attempt ?? 0, podUid: pod.sandbox.metadata?.uid ?? pod.sandbox.labels[POD_UID_LABEL] ?? null }
    },
  }
}

/** The argv of `crictl inspect` for ids crictl listed (each checked to be a container id). */
export function crictlInspectArgs(ids: readonly string[]): string[] {
  if (ids.length === 0 || ids.length > CRICTL_INSPECT_MAX_IDS) throw new Error(`unreachable: ${ids.length} ids for one crictl inspect`)
  return [...CRICTL_INSPECT_PREFIX, ...ids.map(checkedContainerId)]
}

/**
 * The argv of `crictl logs` (cmd/crictl/logs.go: --timestamps, --tail N: the
 * last N lines of the file, --since: a Go duration back from now, as
 * timetype.GetTimestamp reads it; flags before the id, which urfave/cli
 * requires). One line more than tailLines is asked for, to tell whether
 * there were more. --previous is not used: crictl derives its file from the
 * current attempt's path, while the id of the attempt before it is known here
 * already (and works with every crictl version).
 */
export function crictlLogsArgs(containerId: string, bounds: { tailLines: number | null; sinceSeconds: number | null }): string[] {
  const args: string[] = [...CRICTL_LOGS_PREFIX]
  if (bounds.tailLines !== null) args.push('--tail', String(wholeNumber(bounds.tailLines, 'tailLines') + 1))
  if (bounds.sinceSeconds !== null) args.push('--since', `${wholeNumber(bounds.sinceSeconds, 'sinceSeconds')}s`)
  args.push(checkedContainerId(containerId))
  return args
}

function checkedContainerId(id: string): string {
  if (!CONTAINER_ID.test(id)) throw new CrictlOutputError(`crictl listed a container id that is not one: ${JSON.stringify(id.slice(0, 80))}`)
  return id
}

function wholeNumber(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`unreachable: ${what} ${value} is not a whole number`)
  return value
}

function containerName(container: Container): string {
  return container.labels[CONTAINER_NAME_LABEL] ?? container.metadata?.name ?? container.id
}

/** Restarts leave the exited containers of earlier attempts next to the current one: per name, newest first, names sorted. */
function attemptsByName(containers: Container[]): Map<string, Container[]> {
  const byName = new Map<string, Container[]>()
  for (const container of containers) {
    const name = containerName(container)
    byName.set(name, [...(byName.get(name) ?? []), container])
  }
  const sorted = [...byName.entries()].sort(([a], [b]) => compareText(a, b))
  return new Map(sorted.map(([name, list]) => [name, list.sort((a, b) => (isNewer(a, b) ? -1 : isNewer(b, a) ? 1 : 0))]))
}

function isNewer(a: Container, b: Container): boolean {
  const attemptA = a.metadata?.attempt ?? 0
  const attemptB = b.metadata?.attempt ?? 0
  return attemptA !== attemptB ? attemptA > attemptB : a.createdAt > b.createdAt
}

/** The attempt before the newest of list (newest first): attempt - 1 if listed, else the newest older one. */
function previousAttempt(list: Container[]): Container | undefined {
  const current = list[0]
  if (!current) return undefined
  const attempt = current.metadata?.attempt ?? 0
  const older = list.slice(1).filter((c) => (c.metadata?.attempt ?? 0) < attempt)
  return older.find((c) => (c.metadata?.attempt ?? 0) === attempt - 1) ?? older[0]
}

function inspectIdsOf(pods: PodContainers[]): string[] {
  const notRunning: string[] = []
  const before: string[] = []
  const restarted: string[] = []
  for (const pod of pods) {
    for (const list of pod.attempts.values()) {
      const current = list[0] as Container
      const previous = previousAttempt(list)
      const state = current.state ?? ''
      // A created container never started: the runtime has no exit or start to tell.
      if (state !== 'CONTAINER_RUNNING' && state !== 'CONTAINER_CREATED') notRunning.push(current.id)
      if (previous) {
        before.push(previous.id)
        if (state === 'CONTAINER_RUNNING') restarted.push(current.id)
      }
    }
  }
  return [...new Set([...notRunning, ...before, ...restarted])].filter((id) => CONTAINER_ID.test(id)).slice(0, CRICTL_INSPECT_MAX_IDS)
}

function toContainerState(list: Container[], detail: Map<string, InspectStatus>): ContainerRuntimeState {
  const container = list[0] as Container
  const restarts = Number.parseInt(container.annotations[RESTART_COUNT_ANNOTATION] ?? '', 10)
  const own = detail.get(container.id)
  const previous = previousAttempt(list)
  const before = previous ? detail.get(previous.id) : undefined
  const lastTermination: ContainerTermination | null = previous
    ? { exitCode: before ? (before.exitCode ?? null) : null, reason: nonEmpty(before?.reason), finishedAt: inspectTimeToIso(before?.finishedAt) }
    : null
  return {
    name: containerName(container),
    // The kubelet hands the runtime the resolved image ID and keeps the name the
    // user wrote in userSpecifiedImage (newer CRI); show the name when there is one.
    image: nonEmpty(container.image?.userSpecifiedImage) ?? nonEmpty(container.image?.image) ?? nonEmpty(container.imageRef),
    state: CONTAINER_STATES[container.state ?? ''] ?? 'UNKNOWN',
    // Readiness is the kubelet's probe result; the runtime does not know it.
    ready: null,
    restartCount: Number.isNaN(restarts) ? (container.metadata?.attempt ?? null) : restarts,
    containerId: container.id,
    attempt: container.metadata?.attempt ?? null,
    // A running container has no exit code (CRI's is 0 until it finishes).
    exitCode: own && inspectTimeToIso(own.finishedAt) !== null ? (own.exitCode ?? null) : null,
    reason: nonEmpty(own?.reason),
    message: nonEmpty(own?.message),
    startedAt: inspectTimeToIso(own?.startedAt),
    finishedAt: inspectTimeToIso(own?.finishedAt),
    lastTermination,
  }
}

/** What crictl inspect printed, by container id: one document, an array of them, or (before crictl 1.31) several documents in a row. */
function parseInspect(output: string): Map<string, InspectStatus> {
  const byId = new Map<string, InspectStatus>()
  let documents: unknown[]
  try {
    documents = jsonDocuments(output)
  } catch (err) {
    throw new CrictlOutputError(`crictl inspect did not print JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  for (const document of documents.flatMap((d) => (Array.isArray(d) ? (d as unknown[]) : [d]))) {
    const parsed = inspectDocumentSchema.safeParse(document)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new CrictlOutputError(`crictl inspect printed JSON of an unexpected shape${issue ? ` at ${issue.path.join('.') || '(top)'}: ${issue.message}` : ''}`)
    }
    if (parsed.data.status) byId.set(parsed.data.status.id, parsed.data.status)
  }
  return byId
}

/** The JSON values in text, one after another (whitespace between them). */
function jsonDocuments(text: string): unknown[] {
  const documents: unknown[] = []
  let i = 0
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++
    if (i >= text.length) break
    const open = text[i]
    if (open !== '{' && open !== '[') throw new Error(`unexpected ${JSON.stringify(text.slice(i, i + 20))} at offset ${i}`)
    let depth = 0
    let inString = false
    let end = -1
    for (let j = i; j < text.length; j++) {
      const c = text[j]
      if (inString) {
        if (c === '\\') j++
        else if (c === '"') inString = false
      } else if (c === '"') {
        inString = true
      } else if (c === '{' || c === '[') {
        depth++
      } else if (c === '}' || c === ']') {
        depth--
        if (depth === 0) {
          end = j + 1
          break
        }
      }
    }
    if (end < 0) throw new Error('the output ends inside a JSON value')
    documents.push(JSON.parse(text.slice(i, end)))
    i = end
  }
  return documents
}

/** crictl inspect's RFC 3339 (any zone, nanoseconds) as ISO 8601 UTC, or null for the zero time, a zero, or nothing. */
function inspectTimeToIso(value: string | number | null | undefined): string | null {
  if (value === null || value === undefined || value === '' || value === 0 || value === '0') return null
  if (typeof value === 'number' || /^\d+$/.test(value)) {
    const ns = toBigInt(value)
    return ns > 0n ? nanosecondsToIso(ns) : null
  }
  // Go's zero time.Time, printed for a start or finish that did not happen.
  if (value.startsWith('0001-01-01')) return null
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(value)
  if (!m) return null
  const ms = Date.parse(`${m[1]}${m[2] ? `.${m[2].slice(0, 3).padEnd(3, '0')}` : ''}${m[3]}`)
  return Number.isNaN(ms) ? null : new Date(ms).toISOString()
}

function parseOutput<T>(json: string, schema: z.ZodType<T>, command: string): T {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch (err) {
    throw new CrictlOutputError(`${command} did not print JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new CrictlOutputError(
      `${command} printed JSON of an unexpected shape${issue ? ` at ${issue.path.join('.') || '(top)'}: ${issue.message}` : ''}`,
    )
  }
  return parsed.data
}

function toBigInt(value: string | number | null | undefined): bigint {
  if (value === null || value === undefined) return 0n
  try {
    return BigInt(value)
  } catch {
    return 0n
  }
}

function nanosecondsToIso(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString()
}

function nonEmpty(value: string | null | undefined): string | null {
  return value ? value : null
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
