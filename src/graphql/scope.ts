// Per-request state of a GraphQL query: who asks, and the node states the
// query has already loaded. Node fields (agent, kubelet, findings, staticPods
// ...) ask for their node's state one by one; the scope gathers every ask of
// the same tick into one statesOf call, so a query over 1,000 nodes makes a
// constant number of store calls, and each node is read at most once.
// A query shows one state per node: a field content with an older state
// (the default maxAgeSeconds) gets the fresher one another field of the same
// query asked for (staticPods(maxAgeSeconds: 0) beside nodes { agent }),
// never an older one that contradicts it.
//
// The API server is asked the same way: every StaticPod.mirrorPod,
// StaticPod.sync and Node.mirrorPods field of a step is answered from ONE pod
// list for all the nodes they are about, and every Node.kubernetes from one
// node list (the top-level mirrorPods query is one list call of its own). When the API server
// cannot be asked, those fields are null (sync: API_SERVER_UNAVAILABLE) and the
// response carries one API_SERVER_UNAVAILABLE error saying why.

import mercurius from 'mercurius'
import type { KubernetesNodeView } from '../cluster/mirror-pods.ts'
import { isServiceError, type ServiceError } from '../errors.ts'
import type { Services } from '../services/index.ts'
import { maxAgeOf, type NodeFailure, type NodeState } from '../services/node-state.ts'
import type { NodeRecord } from '../domain.ts'
import type { Actor } from '../services/actor.ts'
import type { MirrorPodView } from '../services/mirror-pods.ts'
import type { StaticPodView } from '../services/static-pod-view.ts'
import { TickBatcher } from './tick-batcher.ts'

interface Pending {
  node: NodeRecord
  resolve: (state: NodeState) => void
  reject: (err: unknown) => void
}

export class RequestScope {
  /** Per node, the states this query asked for, by the maxAge they were asked with. */
  private readonly states = new Map<string, Array<{ maxAge: number; state: Promise<NodeState> }>>()
  private readonly pending = new Map<number, Pending[]>()
  private flushScheduled = false
  private readonly reported = new Set<string>()
  private nodesByName: Promise<Map<string, NodeRecord>> | null = null
  private readonly mirrorPodsByNode = new TickBatcher<MirrorPodView[]>(async (nodes) => {
    const byNode = new Map<string, MirrorPodView[]>()
    for (const mirror of await this.services.mirrorPods.list({ nodes }, this.actor)) {
      byNode.set(mirror.nodeName, [...(byNode.get(mirror.nodeName) ?? []), mirror])
    }
    return byNode
  }, [])
  private readonly kubernetesNodes = new TickBatcher<KubernetesNodeView | null>(
    (nodes) => this.services.cluster.kubernetesNodes(nodes, this.actor),
    null,
  )
  constructor(
    readonly services: Services,
    readonly actor: Actor,
    /** Adds an error to the response beside the data (mercurius reads context.errors). */
    private readonly addError: (error: Error) => void,
  ) {}

  /** The node's state at most maxAgeSeconds old (default: the server setting). */
  nodeState(node: NodeRecord, maxAgeSeconds?: number | null): Promise<NodeState> {
    const maxAge = maxAgeOf(maxAgeSeconds, this.services.settings.defaultMaxAgeSeconds)
    const asked = this.states.get(node.name) ?? []
    // Any state this query asked for at least as fresh will do.
    const fresh = asked.find((a) => a.maxAge <= maxAge)
    if (fresh) return fresh.state
    const state = new Promise<NodeState>((resolve, reject) => {
      const group = this.pending.get(maxAge) ?? []
      group.push({ node, resolve, reject })
      this.pending.set(maxAge, group)
    })
    this.states.set(node.name, [...asked, { maxAge, state }])
    this.scheduleFlush()
    return state
  }

  /** Several nodes' states, shared like nodeState's (failures are reported to the response by the loads themselves). */
  async statesOf(nodes: NodeRecord[], maxAgeSeconds: number): Promise<{ states: NodeState[]; failures: NodeFailure[] }> {
    return { states: await Promise.all(nodes.map((node) => this.nodeState(node, maxAgeSeconds))), failures: [] }
  }

  /** Registered nodes by name, read once per request. */
  async node(name: string): Promise<NodeRecord | null> {
    this.nodesByName ??= this.services.nodes.list(this.actor).then((nodes) => new Map(nodes.map((n) => [n.name, n])))
    return (await this.nodesByName).get(name) ?? null
  }

  /** The node's mirror pods; null when the API server cannot be asked (reported once). */
  mirrorPodsOn(node: string): Promise<MirrorPodView[] | null> {
    return this.orApiServerUnavailable(this.mirrorPodsByNode.get(node))
  }

  /** Mirror pods of one node or of all the nodes the actor may see (mirrorPods query); null as above. */
  mirrorPods(query: { node?: string | null | undefined; namespace?: string | null | undefined }): Promise<MirrorPodView[] | null> {
    return this.orApiServerUnavailable(this.services.mirrorPods.list({ nodes: query.node ? [query.node] : null, namespace: query.namespace }, this.actor))
  }

  /** The static pod a mirror pod stands for, from its node's state in this request; null for an orphan or an unregistered node. */
  async staticPodOf(mirror: MirrorPodView): Promise<StaticPodView | null> {
    const node = await this.node(mirror.nodeName)
    return node && this.services.mirrorPods.staticPodOf(mirror, await this.nodeState(node))
  }

  /** The API server's Node object; null when it has none or cannot be asked (reported once). */
  async kubernetesNode(node: string): Promise<KubernetesNodeView | null> {
    return (await this.orApiServerUnavailable(this.kubernetesNodes.get(node))) ?? null
  }

  /** null, and one response error, when the API server cannot be asked; other errors fail the field. */
  private async orApiServerUnavailable<T>(answer: Promise<T>): Promise<T | null> {
    try {
      return await answer
    } catch (err) {
      if (!isServiceError(err) || err.code !== 'API_SERVER_UNAVAILABLE') throw err
      this.reportError('api-server', err)
      return null
    }
  }

  /** One response error per node that could not be read, whatever fields asked for it. */
  reportFailures(failures: NodeFailure[]): void {
    for (const { node, error } of failures) {
      if (this.reported.has(node)) continue
      this.reported.add(node)
      this.addError(nodeError(node, error))
    }
  }

  /** An error beside the data, e.g. API_SERVER_UNAVAILABLE for a null mirrorPods. */
  reportError(key: string, error: ServiceError): void {
    if (this.reported.has(key)) return
    this.reported.add(key)
    this.addError(new mercurius.ErrorWithProps(error.message, { code: error.code }))
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    // setImmediate runs after the resolvers of the current execution step have all asked.
    setImmediate(() => {
      this.flushScheduled = false
      const groups = [...this.pending.entries()]
      this.pending.clear()
      for (const [maxAge, group] of groups) void this.load(maxAge, group)
    })
  }

  private async load(maxAge: number, group: Pending[]): Promise<void> {
    try {
      const { states, failures } = await this.services.nodeState.statesOf(
        group.map((p) => p.node),
        maxAge,
      )
      this.reportFailures(failures)
      group.forEach((p, i) => p.resolve(states[i] as NodeState))
    } catch (err) {
      for (const p of group) p.reject(err)
    }
  }
}

function nodeError(node: string, error: ServiceError): Error {
  return new mercurius.ErrorWithProps(`node ${node}: ${error.message}`, { code: error.code, node })
}
