// Resolvers: parse arguments, call a service, shape the answer. No rule lives
// here; the services hold them all, so REST and GraphQL cannot diverge.

import type { IResolvers, MercuriusContext } from 'mercurius'
import { parseManifest } from '../manifest/parse.ts'
import { containerSpecs } from '../manifest/pod-fields.ts'
import type { MirrorPodRef, MirrorPodView } from '../services/mirror-pods.ts'
import type { ApplyToNodesInput } from '../services/rollouts.ts'
import type { StaticPodView } from '../services/static-pod-view.ts'
import type { AuditEvent, NodeRecord, RevisionRecord } from '../domain.ts'
import { podKeyString } from '../domain.ts'
import { DateTime, JSONScalar } from './scalars.ts'
import type { RequestScope } from './scope.ts'

declare module 'mercurius' {
  interface MercuriusContext {
    scope: RequestScope
  }
}

type Args = Record<string, never>
type Ctx = MercuriusContext

export const resolvers: IResolvers = {
  DateTime,
  JSON: JSONScalar,

  Query: {
    nodes: (_: unknown, args: { labelSelector?: string | null }, { scope }: Ctx) => scope.services.nodes.list(scope.actor, args.labelSelector),
    node: (_: unknown, args: { name: string }, { scope }: Ctx) => scope.services.nodes.get(args.name, scope.actor),
    staticPods: async (_: unknown, args: { node?: string | null; namespace?: string | null; maxAgeSeconds?: number | null }, { scope }: Ctx) => {
      const { pods, failures } = await scope.services.staticPods.list(args, scope.actor, (nodes, maxAge) => scope.statesOf(nodes, maxAge))
      scope.reportFailures(failures)
      return pods
    },
    staticPod: async (_: unknown, args: { node: string; namespace?: string | null; name: string }, { scope }: Ctx) => {
      const { pod, failures } = await scope.services.staticPods.get(args, scope.actor, (nodes, maxAge) => scope.statesOf(nodes, maxAge))
      scope.reportFailures(failures)
      return pod
    },
    mirrorPods: (_: unknown, args: { node?: string | null; namespace?: string | null }, { scope }: Ctx) => scope.mirrorPods(args),
    cluster: () => ({}),
    auditEvents: (_: unknown, args: { node?: string | null; limit: number; before?: string | null }, { scope }: Ctx) =>
      scope.services.audit.list({ node: args.node ?? undefined, limit: args.limit, before: args.before ?? undefined }, scope.actor),
    rollouts: (_: unknown, args: { active?: boolean | null }, { scope }: Ctx) => scope.services.rollouts.list(args, scope.actor),
    rollout: (_: unknown, args: { id: string }, { scope }: Ctx) => scope.services.rollouts.get(args.id, scope.actor),
  },

  Mutation: {
    registerNode: (_: unknown, { input }: { input: Parameters<RequestScope['services']['nodes']['registerNode']>[0] }, { scope }: Ctx) =>
      scope.services.nodes.registerNode(input, scope.actor),
    updateNode: (_: unknown, { input }: { input: Parameters<RequestScope['services']['nodes']['updateNode']>[0] }, { scope }: Ctx) =>
      scope.services.nodes.updateNode(input, scope.actor),
    removeNode: (_: unknown, { name }: { name: string }, { scope }: Ctx) => scope.services.nodes.removeNode(name, scope.actor),
    importNodesFromCluster: (_: unknown, args: { labelSelector?: string | null }, { scope }: Ctx) =>
      scope.services.cluster.importNodes(args.labelSelector, scope.actor),
    createStaticPod: (_: unknown, { input }: { input: Parameters<StaticPods['createStaticPod']>[0] }, { scope }: Ctx) =>
      scope.services.staticPods.createStaticPod(input, scope.actor),
    updateStaticPod: (_: unknown, { input }: { input: Parameters<StaticPods['updateStaticPod']>[0] }, { scope }: Ctx) =>
      scope.services.staticPods.updateStaticPod(input, scope.actor),
    deleteStaticPod: (_: unknown, { input }: { input: Parameters<StaticPods['deleteStaticPod']>[0] }, { scope }: Ctx) =>
      scope.services.staticPods.deleteStaticPod(input, scope.actor),
    restartStaticPod: (_: unknown, { input }: { input: Parameters<StaticPods['restartStaticPod']>[0] }, { scope }: Ctx) =>
      scope.services.staticPods.restartStaticPod(input, scope.actor),
    rollbackStaticPod: (_: unknown, { input }: { input: Parameters<StaticPods['rollbackStaticPod']>[0] }, { scope }: Ctx) =>
      scope.services.staticPods.rollbackStaticPod(input, scope.actor),
    applyStaticPodToNodes: (_: unknown, { input }: { input: ApplyToNodesInput }, { scope }: Ctx) => scope.services.rollouts.apply(input, scope.actor),
    recreateMirrorPod: (_: unknown, { input }: { input: MirrorPodRef }, { scope }: Ctx) => scope.services.mirrorPods.recreateMirrorPod(input, scope.actor),
  },

  Node: {
    kind: (node: NodeRecord) => node.kind.toUpperCase(),
    agent: async (node: NodeRecord, _args: Args, { scope }: Ctx) => (await scope.nodeState(node)).observation.agent,
    kubelet: async (node: NodeRecord, _args: Args, { scope }: Ctx) => (await scope.nodeState(node)).observation.kubelet,
    kubeletUnavailableReason: async (node: NodeRecord, _args: Args, { scope }: Ctx) =>
      (await scope.nodeState(node)).observation.kubeletUnavailableReason,
    runtimeUnavailableReason: async (node: NodeRecord, _args: Args, { scope }: Ctx) =>
      (await scope.nodeState(node)).observation.runtimeUnavailableReason,
    observedAt: async (node: NodeRecord, _args: Args, { scope }: Ctx) => (await scope.nodeState(node)).observation.observedAt,
    findings: async (node: NodeRecord, _args: Args, { scope }: Ctx) => (await scope.nodeState(node)).observation.findings,
    staticPods: async (node: NodeRecord, args: { namespace?: string | null; maxAgeSeconds?: number | null }, { scope }: Ctx) => {
      const state = await scope.nodeState(node, args.maxAgeSeconds)
      return scope.services.staticPods.viewsOf(state, args.namespace)
    },
    mirrorPods: (node: NodeRecord, _args: Args, { scope }: Ctx) => scope.mirrorPodsOn(node.name),
    kubernetes: (node: NodeRecord, _args: Args, { scope }: Ctx) => scope.kubernetesNode(node.name),
  },

  StaticPod: {
    id: (pod: StaticPodView) => `${pod.nodeName}/${pod.namespace}/${pod.name}`,
    node: (pod: StaticPodView, _args: Args, { scope }: Ctx) => scope.node(pod.nodeName),
    pod: (pod: StaticPodView) => podObject(pod.manifest),
    containers: (pod: StaticPodView) => containerSpecs(podObject(pod.manifest)),
    mirrorPod: async (pod: StaticPodView, _args: Args, { scope }: Ctx) => {
      const mirrors = await scope.mirrorPodsOn(pod.nodeName)
      return mirrors && scope.services.mirrorPods.mirrorOf(pod, mirrors)
    },
    sync: async (pod: StaticPodView, _args: Args, { scope }: Ctx) => scope.services.mirrorPods.syncOf(pod, await scope.mirrorPodsOn(pod.nodeName)),
  },

  MirrorPod: {
    staticPod: (mirror: MirrorPodView, _args: Args, { scope }: Ctx) => scope.staticPodOf(mirror),
  },

  Cluster: {
    apiServer: (_: unknown, _args: Args, { scope }: Ctx) => scope.services.cluster.apiServerStatus(),
    nodeCount: async (_: unknown, _args: Args, { scope }: Ctx) => (await scope.services.nodes.list(scope.actor)).length,
  },

  AuditEvent: {
    id: (event: AuditEvent) => event.id,
  },
}

type StaticPods = RequestScope['services']['staticPods']

/** Batched: the history of every static pod in a response comes from one store call per limit. */
export const loaders = {
  StaticPod: {
    history: async (queries: Array<{ obj: StaticPodView; params: { limit: number } }>, { scope }: Ctx): Promise<RevisionRecord[][]> => {
      const byLimit = new Map<number, Map<string, RevisionRecord[]>>()
      for (const limit of new Set(queries.map((q) => q.params.limit))) {
        const keys = queries.filter((q) => q.params.limit === limit).map((q) => ({ node: q.obj.nodeName, namespace: q.obj.namespace, name: q.obj.name }))
        byLimit.set(limit, await scope.services.staticPods.histories(keys, limit))
      }
      return queries.map((q) => byLimit.get(q.params.limit)?.get(podKeyString({ node: q.obj.nodeName, namespace: q.obj.namespace, name: q.obj.name })) ?? [])
    },
  },
}

/** The pod object of a manifest the node already runs (it parsed when it was found). */
function podObject(manifest: string): Record<string, unknown> {
  try {
    return parseManifest(manifest).object
  } catch {
    return {}
  }
}
