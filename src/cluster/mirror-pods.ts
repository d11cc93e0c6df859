// What the API server says about static pods, read from its objects: mirror
// pods (the read-only copies the kubelet posts) and Node objects. Pure
// functions, no I/O; the services call them on what the client returned.

import type { ContainerSpec } from '../manifest/types.ts'
import type { ContainerRuntimeState } from '../domain.ts'
import { CONFIG_SOURCE_ANNOTATION } from '../kubelet-facts.ts'
import type { V1ContainerStatus, V1Node, V1Pod } from '@kubernetes/client-node'

/** The kubelet marks the pods it posts for static pods with this annotation (its value is the config hash). */
const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror'
const CONFIG_HASH_ANNOTATION = 'kubernetes.io/config.hash'

export interface MirrorPodView {
  uid: string
  namespace: string
  name: string
  nodeName: string
  phase: string | null
  ready: boolean | null
  configHash: string | null
  configSource: string | null
  createdAt: string | null
  /** From status: what runs. */
  containers: ContainerRuntimeState[]
  /** From spec: what the kubelet read from the manifest when it posted this pod. */
  specContainers: ContainerSpec[]
}

export interface KubernetesNodeView {
  name: string
  /** The Ready condition: null when the kubelet stopped reporting (Unknown) or there is none. */
  ready: boolean | null
  kubeletVersion: string | null
  internalIP: string | null
  unschedulable: boolean
  labels: Record<string, string>
}

export type SyncStatus = 'IN_SYNC' | 'MIRROR_MISSING' | 'MIRROR_OUTDATED' | 'API_SERVER_UNAVAILABLE'

export function isMirrorPod(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[MIRROR_ANNOTATION] !== undefined
}

/** The view of a mirror pod; null for an object without the fields every pod has (not worth failing a query over). */
export function mirrorPodView(pod: V1Pod): MirrorPodView | null {
  const { metadata, spec, status } = pod
  if (!metadata?.name || !metadata.uid || !spec?.nodeName) return null
  const annotations = metadata.annotations ?? {}
  return {
    uid: metadata.uid,
    namespace: metadata.namespace ?? 'default',
    name: metadata.name,
    nodeName: spec.nodeName,
    phase: status?.phase ?? null,
    ready: conditionValue(status?.conditions, 'Ready'),
    configHash: annotations[CONFIG_HASH_ANNOTATION] ?? null,
    configSource: annotations[CONFIG_SOURCE_ANNOTATION] ?? null,
    createdAt: timestamp(metadata.creationTimestamp),
    containers: [...(status?.containerStatuses ?? []), ...(status?.initContainerStatuses ?? [])].map(containerState),
    specContainers: [
      ...(spec.containers ?? []).map((c) => ({ name: c.name, image: c.image ?? '', init: false })),
      ...(spec.initContainers ?? []).map((c) => ({ name: c.name, image: c.image ?? '', init: true })),
    ],
  }
}

export function kubernetesNodeView(node: V1Node): KubernetesNodeView | null {
  const name = node.metadata?.name
  if (!name) return null
  return {
    name,
    ready: conditionValue(node.status?.conditions, 'Ready'),
    kubeletVersion: node.status?.nodeInfo?.kubeletVersion ?? null,
    internalIP: node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? null,
    unschedulable: node.spec?.unschedulable ?? false,
    labels: node.metadata?.labels ?? {},
  }
}

/**
 * Whether the mirror pod shows what the manifest says. Compared on the spec the
 * kubelet posted (container names, images, init or not), not on status: the
 * runtime reports images resolved (docker.io/library/nginx:1.27 for nginx:1.27),
 * and the kubelet's config hash cannot be recomputed here (it covers the file
 * path and node name too). Container order does not matter to the kubelet.
 */
export function syncStatus(manifestContainers: ContainerSpec[], mirror: MirrorPodView | null): SyncStatus {
  if (!mirror) return 'MIRROR_MISSING'
  return containerKey(manifestContainers) === containerKey(mirror.specContainers) ? 'IN_SYNC' : 'MIRROR_OUTDATED'
}

function containerKey(containers: ContainerSpec[]): string {
  return JSON.stringify(containers.map((c) => [c.init, c.name, c.image]).sort())
}

function containerState(status: V1ContainerStatus): ContainerRuntimeState {
  return {
    name: status.name,
    image: status.image || null,
    state: status.state?.running ? 'RUNNING' : status.state?.waiting ? 'WAITING' : status.state?.terminated ? 'TERMINATED' : 'UNKNOWN',
    ready: status.ready ?? null,
    restartCount: status.restartCount ?? null,
  }
}

function conditionValue(conditions: Array<{ type: string; status: string }> | undefined, type: string): boolean | null {
  const found = conditions?.find((c) => c.type === type)?.status
  return found === 'True' ? true : found === 'False' ? false : null
}

/** client-node gives Date objects; a plain JSON object would give the string. */
function timestamp(value: Date | string | undefined): string | null {
  if (value === undefined) return null
  const date = value instanceof Date ? value : new Date(value)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}
