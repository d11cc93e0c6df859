// Static pod state from the container runtime, read with crictl, which keeps
// working when the API server does not. Pure: the local agent runs crictl with
// execFile, the SSH agent over an exec channel, and both hand the two outputs
// to parseCrictl.
//
// Shapes are crictl's protobuf JSON (`crictl pods -o json` is {"items": [...]},
// `crictl ps -a -o json` is {"containers": [...]}; int64 timestamps are
// nanosecond strings). Fields crictl adds in later versions are ignored.

import { z } from 'zod'
import type { ContainerRuntimeState, PodRuntimeState } from '../domain.ts'
import { CONFIG_SOURCE_ANNOTATION } from '../kubelet-facts.ts'

/** The fixed argv the agents run (never through a shell). */
export const CRICTL_PODS_ARGS = ['pods', '-o', 'json'] as const
export const CRICTL_CONTAINERS_ARGS = ['ps', '-a', '-o', 'json'] as const
/** crictl's JSON for a busy node is a few MB; anything past this is not crictl (the agents stop reading there). */
export const CRICTL_MAX_OUTPUT_BYTES = 64 * 1024 * 1024

const POD_NAME_LABEL = 'io.kubernetes.pod.name'
const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace'
const CONTAINER_NAME_LABEL = 'io.kubernetes.container.name'
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

const podsOutputSchema = z.object({ items: z.array(sandboxSchema).nullish().transform((a) => a ?? []) })
const containersOutputSchema = z.object({ containers: z.array(containerSchema).nullish().transform((a) => a ?? []) })

type Sandbox = z.infer<typeof sandboxSchema>
type Container = z.infer<typeof containerSchema>

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

  const pods: PodRuntimeState[] = []
  for (const { namespace, name, sandbox } of newestSandboxByPod.values()) {
    pods.push({
      namespace,
      name,
      state: SANDBOX_STATES[sandbox.state ?? ''] ?? 'UNKNOWN',
      containers: newestPerName(containersBySandbox.get(sandbox.id) ?? []).map(toContainerState),
      observedAt,
      sandboxId: sandbox.id,
      sandboxCreatedAt: nanosecondsToIso(sandbox.createdAt),
    })
  }
  return pods.sort((a, b) => compareText(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`))
}

function containerName(container: Container): string {
  return container.labels[CONTAINER_NAME_LABEL] ?? container.metadata?.name ?? container.id
}

/** Restarts leave the exited containers of earlier attempts next to the current one. */
function newestPerName(containers: Container[]): Container[] {
  const newest = new Map<string, Container>()
  for (const container of containers) {
    const name = containerName(container)
    const known = newest.get(name)
    if (!known || isNewer(container, known)) newest.set(name, container)
  }
  return [...newest.values()].sort((a, b) => compareText(containerName(a), containerName(b)))
}

function isNewer(a: Container, b: Container): boolean {
  const attemptA = a.metadata?.attempt ?? 0
  const attemptB = b.metadata?.attempt ?? 0
  return attemptA !== attemptB ? attemptA > attemptB : a.createdAt > b.createdAt
}

function toContainerState(container: Container): ContainerRuntimeState {
  const restarts = Number.parseInt(container.annotations[RESTART_COUNT_ANNOTATION] ?? '', 10)
  return {
    name: containerName(container),
    // The kubelet hands the runtime the resolved image ID and keeps the name the
    // user wrote in userSpecifiedImage (newer CRI); show the name when there is one.
    image: nonEmpty(container.image?.userSpecifiedImage) ?? nonEmpty(container.image?.image) ?? nonEmpty(container.imageRef),
    state: CONTAINER_STATES[container.state ?? ''] ?? 'UNKNOWN',
    // Readiness is the kubelet's probe result; the runtime does not know it.
    ready: null,
    restartCount: Number.isNaN(restarts) ? (container.metadata?.attempt ?? null) : restarts,
  }
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
