// A static pod as the API shows it, made from a node's observation: one shape
// for GraphQL and REST, so that neither builds ids, paths, runtime states or
// container lists itself, nor parses a manifest.

import type { ContainerRuntimeState, NodeObservation, NodeRecord, ObservedPod } from '../domain.ts'
import { podKeyString } from '../domain.ts'
import { deepFreeze } from '../deep-freeze.ts'
import { mirrorPodName } from '../manifest/names.ts'
import { parseManifest } from '../manifest/parse.ts'
import { containerSpecs } from '../manifest/pod-fields.ts'
import type { ContainerSpec } from '../manifest/types.ts'

/** A static pod as the API shows it. */
export interface StaticPodView {
  /** <node>/<namespace>/<name>. */
  id: string
  /** The record of the node it was read from (or written to). */
  node: NodeRecord
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
  /** When the file last changed on the node (its modification time, the node's clock); null when not known. */
  modifiedAt: string | null
  stale: boolean
  /** From the node's container runtime; null when the node has none to ask. */
  runtime: PodRuntimeView | null
  /** The manifest parsed as a Pod object ({} in the unexpected case that it does not parse). */
  readonly pod: Record<string, unknown>
  /** The manifest's containers, then its init containers. */
  readonly containers: ContainerSpec[]
}

export interface PodRuntimeView {
  state: string
  containers: ContainerRuntimeState[]
  observedAt: string
}

export function toView(node: NodeRecord, observation: NodeObservation, pod: ObservedPod, stale: boolean): StaticPodView {
  return new View({
    id: podKeyString({ node: node.name, namespace: pod.namespace, name: pod.name }),
    node,
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
    modifiedAt: pod.modifiedAt ?? null,
    stale,
    runtime: runtimeOf(observation, pod),
  })
}

/**
 * The views of every pod of a node's observation. Views of an observation that
 * cannot change are made once and shared by every read of it: both the
 * observation and the node record frozen (the cached ones, ObservationCache and
 * SqliteStore.listNodes, are), held for as long as that observation object is.
 * A read of 1,000 nodes × 8 pods otherwise made 8,000 views, and their ids,
 * paths and mirror names, on every query, nearly all the same as the last
 * query's. Shared views are frozen too.
 */
export function viewsOfObservation(node: NodeRecord, observation: NodeObservation, stale: boolean): readonly StaticPodView[] {
  if (!Object.isFrozen(observation) || !Object.isFrozen(node)) return observation.pods.map((p) => toView(node, observation, p, stale))
  const held = sharedViews.get(observation)?.find((h) => h.node === node && h.stale === stale)
  if (held) return held.views
  const views = Object.freeze(observation.pods.map((p) => deepFreeze(toView(node, observation, p, stale))))
  // A node's observation is read with one record and one staleness nearly always; a few kept, not one per read.
  const entries = [{ node, stale, views }, ...(sharedViews.get(observation) ?? [])].slice(0, 2)
  sharedViews.set(observation, entries)
  return views
}

const sharedViews = new WeakMap<NodeObservation, Array<{ node: NodeRecord; stale: boolean; views: readonly StaticPodView[] }>>()

type ViewFields = Omit<StaticPodView, 'pod' | 'containers'>

/**
 * `pod` and `containers` are worked out when first read, not when the view is
 * made: a read of 1,000 nodes makes thousands of views, and most queries ask
 * for neither. Parses are cached by text (src/manifest/parse.ts), so the same
 * manifest read again costs no parse either. Getters on the prototype, not
 * closures per view, and private fields, so a view's own keys are its data.
 */
class View implements StaticPodView {
  id!: string
  node!: NodeRecord
  nodeName!: string
  namespace!: string
  name!: string
  mirrorPodName!: string
  fileName!: string
  path!: string
  hash!: string
  revision!: number
  manifest!: string
  managed!: boolean
  observedAt!: string
  modifiedAt!: string | null
  stale!: boolean
  runtime!: PodRuntimeView | null
  #pod: Record<string, unknown> | undefined
  #containers: ContainerSpec[] | undefined

  constructor(fields: ViewFields) {
    Object.assign(this, fields)
  }

  get pod(): Record<string, unknown> {
    return (this.#pod ??= podObject(this.manifest))
  }

  get containers(): ContainerSpec[] {
    return (this.#containers ??= containerSpecs(this.pod))
  }
}

/** The pod object of a manifest the node already runs (it parsed when it was found). */
function podObject(manifest: string): Record<string, unknown> {
  try {
    return parseManifest(manifest).object
  } catch {
    return {}
  }
}

/** NOT_FOUND when the runtime answered but runs no sandbox for the pod. */
function runtimeOf(observation: NodeObservation, pod: ObservedPod): PodRuntimeView | null {
  if (observation.runtime === null) return null
  const found = observation.runtime.find((r) => r.namespace === pod.namespace && r.name === pod.name)
  if (found) return { state: found.state, containers: found.containers, observedAt: found.observedAt }
  return { state: 'NOT_FOUND', containers: [], observedAt: observation.observedAt ?? new Date(0).toISOString() }
}
