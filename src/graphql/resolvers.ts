// Resolvers: take the arguments, call a service, pick the answer's fields. No
// rule lives here; the services hold them all, so REST and GraphQL cannot
// diverge. Every argument, parent and result type comes from the SDL through
// the generated Resolvers type (src/graphql/generated/resolvers-types.ts, see
// codegen.yml), whose mappers name the service shapes each type is made from.

import type { EventRecord, NodeKind as RecordKind } from '../domain.ts'
import type { RolloutView } from '../services/rollouts.ts'
import { bounded } from './subscriptions.ts'
import { nodeAddressOf } from '../services/nodes.ts'
import type { StaticPodView } from '../services/static-pod-view.ts'
import type { NodeKind, Resolvers } from './generated/resolvers-types.ts'
import { DateTime, JSONScalar } from './scalars.ts'
import type { RequestScope } from './scope.ts'

declare module 'mercurius' {
  interface MercuriusContext {
    scope: RequestScope
  }
}

/**
 * Enum resolvers: the internal value of each enum value's name, so that the
 * services' own values are served as they are (Node.kind is the record's
 * 'local' or 'ssh'). src/graphql/schema.ts gives them to the schema; mercurius
 * does not take enum values with the field resolvers.
 */
export const enumValues = {
  NodeKind: { LOCAL: 'local', SSH: 'ssh' } satisfies Record<NodeKind, RecordKind>,
} satisfies Pick<Resolvers, 'NodeKind'>

/** Field and scalar resolvers, for mercurius. */
export const resolvers: Omit<Resolvers, keyof typeof enumValues> = {
  DateTime,
  JSON: JSONScalar,

  Query: {
    nodes: (_, args, { scope }) => scope.services.nodes.list(scope.actor, args.labelSelector),
    node: (_, args, { scope }) => scope.services.nodes.get(args.name, scope.actor),
    staticPods: async (_, args, { scope }) => {
      const { pods, failures } = await scope.services.staticPods.list(args, scope.actor, (nodes, maxAge) => scope.statesOf(nodes, maxAge))
      scope.reportFailures(failures)
      return pods
    },
    staticPod: async (_, args, { scope }) => {
      const { pod, failures } = await scope.services.staticPods.get(args, scope.actor, (nodes, maxAge) => scope.statesOf(nodes, maxAge))
      scope.reportFailures(failures)
      return pod
    },
    mirrorPods: (_, args, { scope }) => scope.mirrorPods(args),
    cluster: () => ({}),
    auditEvents: (_, args, { scope }) =>
      scope.services.audit.list({ node: args.node ?? undefined, limit: args.limit, before: args.before ?? undefined }, scope.actor),
    rollouts: (_, args, { scope }) => scope.services.rollouts.list(args, scope.actor),
    rollout: (_, args, { scope }) => scope.services.rollouts.get(args.id, scope.actor),
    jumpHosts: (_, _args, { scope }) => scope.services.jumpHosts.list(scope.actor),
    events: (_, args, { scope }) => scope.services.events.list(args, scope.actor),
    webhooks: (_, _args, { scope }) => scope.services.webhooks.list(scope.actor),
  },

  Mutation: {
    registerNode: (_, { input }, { scope }) => scope.services.nodes.registerNode(input, scope.actor),
    updateNode: (_, { input }, { scope }) => scope.services.nodes.updateNode(input, scope.actor),
    removeNode: (_, { name }, { scope }) => scope.services.nodes.removeNode(name, scope.actor),
    putJumpHost: (_, { input }, { scope }) => scope.services.jumpHosts.putJumpHost(input, scope.actor),
    removeJumpHost: (_, { name }, { scope }) => scope.services.jumpHosts.removeJumpHost(name, scope.actor),
    importNodesFromCluster: (_, args, { scope }) => scope.services.cluster.importNodes(args.labelSelector, scope.actor),
    importKnownHosts: (_, args, { scope }) => scope.services.knownHosts.importKnownHosts(args.knownHosts, args.names, scope.actor),
    createStaticPod: (_, { input }, { scope }) => scope.services.staticPods.createStaticPod(input, scope.actor),
    updateStaticPod: (_, { input }, { scope }) => scope.services.settledWrites.updateStaticPod(input, scope.actor),
    deleteStaticPod: (_, { input }, { scope }) => scope.services.staticPods.deleteStaticPod(input, scope.actor),
    restartStaticPod: (_, { input }, { scope }) => scope.services.staticPods.restartStaticPod(input, scope.actor),
    rollbackStaticPod: (_, { input }, { scope }) => scope.services.staticPods.rollbackStaticPod(input, scope.actor),
    patchStaticPod: (_, { input }, { scope }) => scope.services.settledWrites.patchStaticPod(input, scope.actor),
    applyStaticPodToNodes: (_, { input }, { scope }) => scope.services.rollouts.apply(input, scope.actor),
    patchStaticPodOnNodes: (_, { input }, { scope }) => scope.services.rollouts.patch(input, scope.actor),
    recreateMirrorPod: (_, { input }, { scope }) => scope.services.mirrorPods.recreateMirrorPod(input, scope.actor),
    createWebhook: (_, { input }, { scope }) => scope.services.webhooks.create(input, scope.actor),
    deleteWebhook: (_, { id }, { scope }) => scope.services.webhooks.delete(id, scope.actor),
  },

  // Each event or rollout state the stream yields is the field's value as it is.
  Subscription: {
    events: {
      subscribe: (_, args, context) => bounded(context, context.scope.services.settings.subscriptionsPerConnection, () => context.scope.services.events.subscribe(args, context.scope.actor)),
      resolve: (event: EventRecord) => event,
    },
    rollout: {
      subscribe: (_, args, context) => bounded(context, context.scope.services.settings.subscriptionsPerConnection, () => context.scope.services.rollouts.watch(args.id, context.scope.actor)),
      resolve: (rollout: RolloutView) => rollout,
    },
  },

  Node: {
    host: (node) => nodeAddressOf(node).host,
    port: (node) => nodeAddressOf(node).port,
    user: (node) => nodeAddressOf(node).user,
    hostKeyFingerprint: (node) => nodeAddressOf(node).hostKeyFingerprint,
    observedHostKeyFingerprint: (node) => nodeAddressOf(node).observedHostKeyFingerprint,
    privilege: (node) => nodeAddressOf(node).privilege,
    via: (node) => nodeAddressOf(node).via,
    sftpServer: (node) => (node.kind === 'ssh' ? node.ssh.sftpServer : null),
    agent: async (node, _args, { scope }) => (await scope.nodeState(node)).observation.agent,
    kubelet: async (node, _args, { scope }) => (await scope.nodeState(node)).observation.kubelet,
    kubeletUnavailableReason: async (node, _args, { scope }) => (await scope.nodeState(node)).observation.kubeletUnavailableReason,
    runtimeUnavailableReason: async (node, _args, { scope }) => (await scope.nodeState(node)).observation.runtimeUnavailableReason,
    observedAt: async (node, _args, { scope }) => (await scope.nodeState(node)).observation.observedAt,
    findings: async (node, _args, { scope }) => {
      const state = await scope.nodeState(node)
      const certificates = await scope.services.diagnosis.certificateFindings(scope.services.staticPods.viewsOf(state), scope.diagnosisReads)
      return [...state.observation.findings, ...certificates]
    },
    kubeletLog: (node, args, { scope }) => scope.services.diagnosis.kubeletLog(node, args, scope.actor),
    diagnosis: async (node, _args, { scope }) => {
      const state = await scope.nodeState(node)
      const syncOf = async (pod: StaticPodView) => scope.services.mirrorPods.syncOf(pod, await scope.mirrorPodsOn(pod.nodeName))
      return scope.services.diagnosis.diagnoseNode(state, scope.services.staticPods.viewsOf(state), syncOf, scope.actor, scope.diagnosisReads)
    },
    staticPods: async (node, args, { scope }) => scope.services.staticPods.viewsOf(await scope.nodeState(node, args.maxAgeSeconds), args.namespace),
    mirrorPods: (node, _args, { scope }) => scope.mirrorPodsOn(node.name),
    kubernetes: (node, _args, { scope }) => scope.kubernetesNode(node.name),
  },

  JumpHost: {
    // Asked live, once per jump host per query (the service shares the check between these fields).
    reachable: async (jumpHost, _args, { scope }) => (await scope.services.jumpHosts.status(jumpHost)).reachable,
    lastError: async (jumpHost, _args, { scope }) => (await scope.services.jumpHosts.status(jumpHost)).lastError,
    observedHostKeyFingerprint: async (jumpHost, _args, { scope }) => (await scope.services.jumpHosts.status(jumpHost)).observedHostKeyFingerprint,
    nodes: (jumpHost, _args, { scope }) => scope.services.jumpHosts.nodesThrough(jumpHost, scope.actor),
  },

  StaticPod: {
    mirrorPod: async (pod, _args, { scope }) => {
      const mirrors = await scope.mirrorPodsOn(pod.nodeName)
      return mirrors && scope.services.mirrorPods.mirrorOf(pod, mirrors)
    },
    sync: async (pod, _args, { scope }) => scope.services.mirrorPods.syncOf(pod, await scope.mirrorPodsOn(pod.nodeName)),
    history: (pod, args, { scope }) => scope.history(pod, args.limit),
    logs: (pod, args, { scope }) => scope.services.diagnosis.containerLog(pod, args, scope.actor),
    certificates: (pod, _args, { scope }) => scope.services.diagnosis.certificates(pod, scope.diagnosisReads),
    diagnosis: async (pod, _args, { scope }) => {
      const [state, mirrors] = await Promise.all([scope.nodeState(pod.node), scope.mirrorPodsOn(pod.nodeName)])
      return scope.services.diagnosis.diagnosePod(pod, state, scope.services.mirrorPods.syncOf(pod, mirrors), scope.actor, scope.diagnosisReads)
    },
  },

  MirrorPod: {
    staticPod: (mirror, _args, { scope }) => scope.staticPodOf(mirror),
  },

  Cluster: {
    apiServer: (_, _args, { scope }) => scope.services.cluster.apiServerStatus(),
    nodeCount: async (_, _args, { scope }) => (await scope.services.nodes.list(scope.actor)).length,
  },
}
