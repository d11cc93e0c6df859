// A static pod as the API shows it, made from a node's observation: one shape
// for GraphQL and REST, so that neither builds ids, paths or runtime states itself.

import type { ContainerRuntimeState, NodeObservation, NodeRecord, ObservedPod } from '../domain.ts'
import { mirrorPodName } from '../manifest/names.ts'

/** A static pod as the API shows it. */
export interface StaticPodView {
  nodeName: string
  namespace: string
  name: string
  mirrorPodName: string
  fileName: string
  path: string
  hash: string
  revision: number
  manifest: string
  managed: boolean
  observedAt: string
  stale: boolean
  /** From the node's container runtime; null when the node has none to ask. */
  runtime: PodRuntimeView | null
}

export interface PodRuntimeView {
  state: string
  containers: ContainerRuntimeState[]
  observedAt: string
}

export function toView(node: NodeRecord, observation: NodeObservation, pod: ObservedPod, stale: boolean): StaticPodView {
  return {
    nodeName: node.name,
    namespace: pod.namespace,
    name: pod.name,
    mirrorPodName: mirrorPodName(pod.name, node.name),
    fileName: pod.fileName,
    path: `${node.staticPodPath.replace(/\/+$/, '')}/${pod.fileName}`,
    hash: pod.hash,
    revision: pod.revision,
    manifest: pod.manifest,
    managed: pod.managed,
    observedAt: observation.observedAt ?? new Date(0).toISOString(),
    stale,
    runtime: runtimeOf(observation, pod),
  }
}

/** NOT_FOUND when the runtime answered but runs no sandbox for the pod. */
function runtimeOf(observation: NodeObservation, pod: ObservedPod): PodRuntimeView | null {
  if (observation.runtime === null) return null
  const found = observation.runtime.find((r) => r.namespace === pod.namespace && r.name === pod.name)
  if (found) return { state: found.state, containers: found.containers, observedAt: found.observedAt }
  return { state: 'NOT_FOUND', containers: [], observedAt: observation.observedAt ?? new Date(0).toISOString() }
}

