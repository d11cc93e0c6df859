// The composition root of the services: one place that wires store, agents and
// services together, for the long-running server, for Lambda and for tests.

import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { EventRecord } from '../domain.ts'
import type { AgentProvider } from '../agents/registry.ts'
import type { AddressAllowList, HostResolver } from '../net/address-allow.ts'
import type { Store } from '../store/store.ts'
import { AuditService } from './audit.ts'
import { ClusterService, type ClusterSettings } from './cluster.ts'
import { DiagnosisService, type DiagnosisOptions } from './diagnosis.ts'
import { EventService } from './events.ts'
import { Observer } from './observer.ts'
import { SecretBox } from './secret-box.ts'
import { WebhookService } from './webhooks.ts'
import { JumpHostService } from './jump-hosts.ts'
import { KnownHostsService } from './known-hosts.ts'
import { MirrorPodService } from './mirror-pods.ts'
import { NodeStateService, type NodeReadObserver } from './node-state.ts'
import { NodeService, type LocalNodeSettings } from './nodes.ts'
import { ReadinessService } from './readiness.ts'
import { RolloutRegistry, RolloutService } from './rollouts.ts'
import { SettledWriteService } from './settled-write.ts'
import { StaticPodService } from './static-pods.ts'

export interface ServiceSettings {
  defaultMaxAgeSeconds: number
  /** How many nodes one request reads at once. */
  fanOut: number
  /** The most nodes one request may address. */
  maxNodesPerRequest: number
  localNode: LocalNodeSettings | null
  /** The API server, if any: where it is and how long to wait for it. */
  cluster: ClusterSettings
  /** NODE_ADDRESS_ALLOW: where SSH nodes may be registered; null: anywhere. */
  nodeAddressAllow: AddressAllowList | null
  /** Answers host names for that check instead of the system resolver (tests). */
  resolveHost?: HostResolver | undefined
  /** CERT_EXPIRY_WARNING_DAYS. */
  certWarnDays: number
  /** OBSERVE_INTERVAL_SECONDS (0: off) and OBSERVE_CONCURRENCY. */
  observe: { intervalSeconds: number; concurrency: number }
  eventRetentionDays: number
  webhooks: {
    maxAttempts: number
    /** The key webhook secrets are sealed with; null: no webhook can be created. */
    secretKey: Buffer | null
    /** Tests: a shorter first retry (the contract's is about 1 s). */
    firstRetryMs?: number | undefined
  }
  /** SUBSCRIPTION_MAX_PER_CONNECTION. */
  subscriptionsPerConnection: number
  /** How often subscribers' tail reads the store (tests shorten it). */
  eventPollMs?: number | undefined
}

export interface Services {
  settings: ServiceSettings
  store: Store
  agents: AgentProvider
  audit: AuditService
  nodes: NodeService
  jumpHosts: JumpHostService
  nodeState: NodeStateService
  staticPods: StaticPodService
  cluster: ClusterService
  mirrorPods: MirrorPodService
  readiness: ReadinessService
  settledWrites: SettledWriteService
  rollouts: RolloutService
  knownHosts: KnownHostsService
  diagnosis: DiagnosisService
  events: EventService
  webhooks: WebhookService
  observer: Observer
  close(): Promise<void>
}

export async function createServices(deps: {
  store: Store
  agents: AgentProvider
  log: Logger
  settings: ServiceSettings
  clock?: () => Date
  /** Told of every live node read (metrics). */
  nodeReadObserver?: NodeReadObserver
  /** Told of the certificates diagnosis reads for each pod (metrics). */
  onCertificates?: DiagnosisOptions['onCertificates']
  /** Told of every event this instance records (metrics). */
  onEvents?: (events: readonly EventRecord[]) => void
}): Promise<Services> {
  const { store, agents, log, settings } = deps
  const clock = deps.clock ?? (() => new Date())
  const audit = new AuditService(store, clock, log)
  const jumpHosts = new JumpHostService({ store, audit, agents, addressAllow: settings.nodeAddressAllow, resolveHost: settings.resolveHost })
  const nodes = new NodeService(store, audit, clock, settings.localNode, settings.nodeAddressAllow, settings.resolveHost, jumpHosts)
  // The raw errors behind the agents' messages go to the service log (debug), not to the API.
  agents.attachLog?.(log)
  // The agents read jump hosts' records through the jump host service, and record the keys they present there.
  agents.attachJumpHosts?.(jumpHosts)
  const webhooks = new WebhookService({
    store,
    audit,
    clock,
    log,
    box: settings.webhooks.secretKey ? new SecretBox(settings.webhooks.secretKey) : null,
    maxAttempts: settings.webhooks.maxAttempts,
    firstRetryMs: settings.webhooks.firstRetryMs,
  })
  const events = new EventService({ store, log, clock, webhooks, retentionDays: settings.eventRetentionDays, pollMs: settings.eventPollMs, onRecorded: deps.onEvents })
  const nodeState = new NodeStateService({
    store,
    agents,
    clock,
    fanOut: settings.fanOut,
    maxNodesPerRequest: settings.maxNodesPerRequest,
    observer: deps.nodeReadObserver,
    events,
  })
  const cluster = new ClusterService({ settings: settings.cluster, store, audit, clock })
  const readiness = new ReadinessService({ agents, cluster })
  const staticPods = new StaticPodService({
    store,
    agents,
    nodes,
    nodeState,
    audit,
    clock,
    defaultMaxAgeSeconds: settings.defaultMaxAgeSeconds,
    instanceId: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
  })
  const settledWrites = new SettledWriteService({ staticPods, nodes, readiness, audit, log })
  const mirrorPods = new MirrorPodService({ cluster, audit, staticPods })
  const rollouts = new RolloutService({
    nodes,
    staticPods,
    settledWrites,
    audit,
    registry: new RolloutRegistry(),
    clock,
    log,
    maxNodesPerRequest: settings.maxNodesPerRequest,
    events,
  })
  const knownHosts = new KnownHostsService({ nodes, jumpHosts, audit, maxNodesPerRequest: settings.maxNodesPerRequest })
  const diagnosis = new DiagnosisService({ agents, audit, clock, log, certWarnDays: settings.certWarnDays, onCertificates: deps.onCertificates })
  const observer = new Observer({
    nodes,
    nodeState,
    staticPods,
    diagnosis,
    events,
    clock,
    log,
    intervalSeconds: settings.observe.intervalSeconds,
    concurrency: settings.observe.concurrency,
    certWarnDays: settings.certWarnDays,
  })
  await nodes.ensureLocalNode()
  return {
    settings,
    store,
    agents,
    audit,
    nodes,
    jumpHosts,
    nodeState,
    staticPods,
    cluster,
    mirrorPods,
    readiness,
    settledWrites,
    rollouts,
    knownHosts,
    diagnosis,
    events,
    webhooks,
    observer,
    async close() {
      await observer.stop()
      events.close()
      await webhooks.close()
      await agents.close()
      await store.close()
    },
  }
}
