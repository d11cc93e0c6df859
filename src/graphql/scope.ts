// Per-request state of a GraphQL query: who asks, and what the query has
// already loaded. Every batched read goes through one StepBatcher
// (src/graphql/batcher.ts): the asks of one execution step are answered by one
// load per group, so a query over 1,000 nodes makes a constant number of store
// and API server calls.
//
// Node states: node fields (agent, kubelet, findings, staticPods ...) ask for
// their node's state one by one, grouped by the maxAge they allow; each node is
// read at most once per maxAge. A query shows one state per node: a field
// content with an older state (the default maxAgeSeconds) gets the freshest one
// another field of the same query asked for (staticPods(maxAgeSeconds: 0)
// beside nodes { agent }), never an older one that contradicts it.
//
// Histories: every StaticPod.history of a step with the same limit comes from
// one store call.
//
// The API server: every StaticPod.mirrorPod, StaticPod.sync and
// Node.mirrorPods field of a step is answered from ONE pod list for all the
// nodes they are about, and every Node.kubernetes from one node list (the
// top-level mirrorPods query is one list call of its own). When the API server
// cannot be asked, those fields are null (sync: API_SERVER_UNAVAILABLE) and the
// response carries one API_SERVER_UNAVAILABLE error saying why.

import mercurius from 'mercurius'
import type { KubernetesNodeView } from '../cluster/mirror-pods.ts'
import { isServiceError, type ServiceError } from '../errors.ts'
import { DiagnosisReads } from '../services/diagnosis.ts'
import type { Services } from '../services/index.ts'
import { maxAgeOf, type NodeFailure, type NodeState } from '../services/node-state.ts'
import { podKeyString, type NodeRecord, type PodKey, type RevisionRecord } from '../domain.ts'
import type { Actor } from '../services/actor.ts'
import type { MirrorPodView } from '../services/mirror-pods.ts'
import type { StaticPodView } from '../services/static-pod-view.ts'
import { StepBatcher } from './batcher.ts'

export class RequestScope {
  /** Files, journals and logs this query has read for diagnosis, each once. */
  readonly diagnosisReads = new DiagnosisReads()
  /** Per node, the states this query asked for, by the maxAge they were asked with. */
  private readonly states = new Map<string, Array<{ maxAge: number; state: Promise<NodeState> }>>()
  private readonly reported = new Set<string>()
  private nodesByName: Promise<Map<string, NodeRecord>> | null = null

  private readonly nodeStates = new StepBatcher<NodeRecord, NodeState, number>({
    key: (node) => node.name,
    load: async (nodes, maxAge) => {
      const { states, failures } = await this.services.nodeState.statesOf(nodes, maxAge)
      this.reportFailures(failures)
      return states
    },
  })
  private readonly histories = new StepBatcher<PodKey, RevisionRecord[], number>({
    key: podKeyString,
    load: async (keys, limit) => {
      const byKey = await this.services.staticPods.histories(keys, limit)
      return keys.map((k) => byKey.get(podKeyString(k)) ?? [])
    },
  })
  private readonly mirrorPodsByNode = new StepBatcher<string, MirrorPodView[]>({
    key: (node) => node,
    load: async (nodes) => {
      const byNode = new Map<string, MirrorPodView[]>()
      for (const mirror of await this.services.mirrorPods.list({ nodes }, this.actor)) {
        byNode.set(mirror.nodeName, [...(byNode.get(mirror.nodeName) ?? []), mirror])
      }
      return nodes.map((n) => byNode.get(n) ?? [])
    },
  })
  private readonly kubernetesNodes = new StepBatcher<string, KubernetesNodeView | null>({
    key: (node) => node,
    load: async (nodes) => {
      const byName = await this.services.cluster.kubernetesNodes(nodes, this.actor)
      return nodes.map((n) => byName.get(n) ?? null)
    },
  })

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
    // Any state this query asked for at least as fresh will do; the freshest of them.
    const fresh = asked.filter((a) => a.maxAge <= maxAge).sort((a, b) => a.maxAge - b.maxAge)[0]
    if (fresh) return fresh.state
    const state = this.nodeStates.get(node, maxAge)
    this.states.set(node.name, [...asked, { maxAge, state }])
    return state
  }

  /** Several nodes' states, shared like nodeState's (failures are reported to the response by the loads themselves). */
  async statesOf(nodes: NodeRecord[], maxAgeSeconds: number): Promise<{ states: NodeState[]; failures: NodeFailure[] }> {
    return { states: await Promise.all(nodes.map((node) => this.nodeState(node, maxAgeSeconds))), failures: [] }
  }

  /** The pod's revisions, newest first, at most limit of them. */
  history(pod: StaticPodView, limit: number): Promise<RevisionRecord[]> {
    return this.histories.get({ node: pod.nodeName, namespace: pod.namespace, name: pod.name }, limit)
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
}

function nodeError(node: string, error: ServiceError): Error {
  return new mercurius.ErrorWithProps(`node ${node}: ${error.message}`, { code: error.code, node })
}
