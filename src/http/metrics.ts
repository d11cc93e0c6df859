// Prometheus metrics at /metrics: HTTP and GraphQL requests, per-node agent
// latency and errors, the SSH pool, the API server breaker and store latency.
// One registry per app (not prom-client's global one), so tests and several
// apps in one process do not share counters.
//
// Gauges for alerting (docs/alerts.yaml): node reachable, static pod ready,
// container restarts, findings by code, certificate seconds left. They are
// what the service last observed — the latest NodeObservation per node that
// node-state recorded, the certificates diagnosis last read — exported at
// scrape time: a scrape reads no node. Label cardinality is bounded: `node`
// is a registered node's name (at most MAX_GAUGE_NODES of them, the least
// recently observed forgotten first, and any not observed for
// GAUGE_NODE_TTL_MS forgotten, so a removed node's series go away); a node's
// `namespace`/`name` come from its manifests (at most MAX_GAUGE_PODS_PER_NODE
// pods, by namespace and name) and `container` from the runtime's containers
// of those pods (at most MAX_GAUGE_CONTAINERS_PER_POD); `code` is the
// FindingCode enum.

import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { BreakerState } from '../cluster/breaker.ts'
import type { CertificateInfo } from '../diagnosis/certificates.ts'
import { isPodReady, runtimeOfPod, type EventRecord, type NodeObservation } from '../domain.ts'
import type { NodeReadObserver } from '../services/node-state.ts'
import type { Store } from '../store/store.ts'

export interface GaugeSources {
  /** Open SSH connections (the pool), when there is a pool. */
  sshConnections?: () => number
  /** The API server's circuit breaker (src/cluster/breaker.ts); null: no API server configured. */
  apiServerBreakerState?: () => BreakerState | null
  /** Open WebSocket connections of GraphQL subscriptions. */
  subscriptionConnections?: () => number
}

/** The pods of a node the pod gauges export: the first MAX_GAUGE_PODS_PER_NODE (observations hold them by namespace and name). */
function exportedPods(observation: NodeObservation): NodeObservation['pods'] {
  return observation.pods.slice(0, MAX_GAUGE_PODS_PER_NODE)
}

/** The gauge's values: 0 closed (calls go through), 1 open (failing fast), 2 half-open (the next call, or the one running, probes). */
const BREAKER_STATE_VALUES: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 }
const NO_API_SERVER = -1

/** The most nodes the alerting gauges export (the least recently observed are forgotten beyond it). */
const MAX_GAUGE_NODES = 1000
/** The most static pods per node the pod gauges export (the first by namespace and name). */
const MAX_GAUGE_PODS_PER_NODE = 100
/** The most containers per pod the restart gauge exports. */
const MAX_GAUGE_CONTAINERS_PER_POD = 32
/** A node not observed for this long is forgotten (a removed node's series disappear then). */
const GAUGE_NODE_TTL_MS = 3600_000

export interface GaugeOptions {
  /** Overrides GAUGE_NODE_TTL_MS (tests). */
  nodeTtlMs?: number
  /** Overrides MAX_GAUGE_NODES (tests). */
  maxNodes?: number
  clock?: () => number
}

/** A pod's certificates as diagnosis last read them: the soonest notAfter (epoch ms). */
interface CertificateExpiry {
  notAfterMs: number
  seenAt: number
}

interface NodeSeen {
  node: string
  /** null: only certificates known yet (read from a served observation, no live read since this process started). */
  observation: NodeObservation | null
  seenAt: number
  /** By `<namespace>/<name>`. */
  certificates: Map<string, CertificateExpiry>
}

export class Metrics implements NodeReadObserver {
  readonly registry = new Registry()
  private readonly httpRequests = new Counter({ name: 'staticpod_http_requests_total', help: 'HTTP requests by method, route and status code', labelNames: ['method', 'route', 'status'], registers: [this.registry] })
  private readonly httpDuration = new Histogram({ name: 'staticpod_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly graphqlOperations = new Counter({ name: 'staticpod_graphql_operations_total', help: 'GraphQL operations by type and outcome', labelNames: ['type', 'outcome'], registers: [this.registry] })
  private readonly graphqlDuration = new Histogram({ name: 'staticpod_graphql_operation_duration_seconds', help: 'GraphQL operation latency', labelNames: ['type'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly nodeReadDuration = new Histogram({ name: 'staticpod_node_agent_read_duration_seconds', help: 'Live reads of a node through its agent', labelNames: ['node'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly nodeErrors = new Counter({ name: 'staticpod_node_agent_errors_total', help: 'Failed live reads of a node, by error code', labelNames: ['node', 'code'], registers: [this.registry] })
  // type is the EventType enum: 13 series at most.
  private readonly events = new Counter({ name: 'staticpod_events_total', help: 'Events this instance recorded (from its observations, writes, rollouts and certificate checks), by type', labelNames: ['type'], registers: [this.registry] })
  private readonly storeDuration = new Histogram({ name: 'staticpod_store_operation_duration_seconds', help: 'Store calls by method', labelNames: ['method', 'outcome'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] })

  /** The latest observation per node, least recently observed first (Map order). */
  private readonly nodes = new Map<string, NodeSeen>()
  private readonly nodeTtlMs: number
  private readonly maxNodes: number
  private readonly now: () => number

  constructor(sources: GaugeSources = {}, gaugeOptions: GaugeOptions = {}) {
    this.nodeTtlMs = gaugeOptions.nodeTtlMs ?? GAUGE_NODE_TTL_MS
    this.maxNodes = gaugeOptions.maxNodes ?? MAX_GAUGE_NODES
    this.now = gaugeOptions.clock ?? Date.now
    collectDefaultMetrics({ register: this.registry, prefix: 'staticpod_' })
    this.alertingGauges()
    new Gauge({
      name: 'staticpod_subscription_connections',
      help: 'Open WebSocket connections of GraphQL subscriptions',
      registers: [this.registry],
      collect() {
        this.set(sources.subscriptionConnections?.() ?? 0)
      },
    })
    new Gauge({
      name: 'staticpod_ssh_pool_connections',
      help: 'Open SSH connections in the pool',
      registers: [this.registry],
      collect() {
        this.set(sources.sshConnections?.() ?? 0)
      },
    })
    new Gauge({
      name: 'staticpod_api_server_breaker_state',
      help: 'API server circuit breaker: 0 closed, 1 open, 2 half-open, -1 no API server configured',
      registers: [this.registry],
      collect() {
        const state = sources.apiServerBreakerState?.() ?? null
        this.set(state === null ? NO_API_SERVER : BREAKER_STATE_VALUES[state])
      },
    })
  }

  /** node-state recorded an observation of a node (a live read, or a failure): the gauges' source. */
  observed(observation: NodeObservation): void {
    const previous = this.nodes.get(observation.node)
    this.keep({ node: observation.node, observation, seenAt: this.now(), certificates: previous?.certificates ?? new Map() })
  }

  /** Stores a node's entry as the most recently observed, forgetting the least recently observed beyond the cap. */
  private keep(seen: NodeSeen): void {
    this.nodes.delete(seen.node)
    this.nodes.set(seen.node, seen)
    while (this.nodes.size > this.maxNodes) this.nodes.delete(this.nodes.keys().next().value as string)
  }

  /** Diagnosis read a pod's certificates: the soonest notAfter is the pod's expiry gauge. */
  certificatesRead(pod: { node: string; namespace: string; name: string }, certificates: CertificateInfo[]): void {
    // pod.node is a registered node's name (the pod was read from it): bounded as the observations are.
    let seen = this.nodes.get(pod.node)
    if (!seen) {
      seen = { node: pod.node, observation: null, seenAt: this.now(), certificates: new Map() }
      this.keep(seen)
    }
    const key = `${pod.namespace}/${pod.name}`
    const soonest = Math.min(...certificates.map((c) => Date.parse(c.notAfter)).filter((t) => Number.isFinite(t)))
    if (!Number.isFinite(soonest)) {
      seen.certificates.delete(key)
      return
    }
    seen.certificates.delete(key)
    seen.certificates.set(key, { notAfterMs: soonest, seenAt: this.now() })
    while (seen.certificates.size > MAX_GAUGE_PODS_PER_NODE) seen.certificates.delete(seen.certificates.keys().next().value as string)
  }

  /** The kept nodes, those not observed for nodeTtlMs forgotten first. */
  private currentNodes(): NodeSeen[] {
    const now = this.now()
    for (const [name, seen] of this.nodes) {
      if (now - seen.seenAt > this.nodeTtlMs) this.nodes.delete(name)
      else for (const [key, cert] of seen.certificates) if (now - cert.seenAt > this.nodeTtlMs) seen.certificates.delete(key)
    }
    return [...this.nodes.values()]
  }

  private alertingGauges(): void {
    const registry = this.registry
    /** A gauge set afresh at each scrape: reset first, so series of what vanished disappear. */
    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset()
          fill(this)
        },
      })
    }
    gauge(
      'staticpod_node_reachable',
      'Whether the last read of the node through its agent worked: 1 yes, 0 no',
      ['node'],
      (reachable) => {
        for (const { observation } of this.currentNodes()) if (observation) reachable.set({ node: observation.node }, observation.agent.reachable ? 1 : 0)
      },
    )
    gauge(
      'staticpod_static_pod_ready',
      "1 when the container runtime shows the static pod's sandbox ready and every container running (and not unready), else 0; absent when the runtime could not be asked",
      ['node', 'namespace', 'name'],
      (ready) => {
        for (const { observation } of this.currentNodes()) {
          // Unreachable now: the runtime could not be asked (the observation keeps the last state it gave).
          if (!observation?.agent.reachable || observation.runtime === null) continue
          for (const pod of exportedPods(observation)) {
            ready.set({ node: observation.node, namespace: pod.namespace, name: pod.name }, isPodReady(runtimeOfPod(observation, pod)) ? 1 : 0)
          }
        }
      },
    )
    gauge(
      'staticpod_static_pod_container_restarts',
      "Restarts of a static pod's container, as the container runtime counts them",
      ['node', 'namespace', 'name', 'container'],
      (restarts) => {
        for (const { observation } of this.currentNodes()) {
          if (!observation?.agent.reachable) continue
          for (const pod of exportedPods(observation)) {
            for (const c of (runtimeOfPod(observation, pod)?.containers ?? []).slice(0, MAX_GAUGE_CONTAINERS_PER_POD)) {
              if (c.restartCount !== null) restarts.set({ node: observation.node, namespace: pod.namespace, name: pod.name, container: c.name }, c.restartCount)
            }
          }
        }
      },
    )
    gauge(
      'staticpod_node_findings',
      "Findings in the node's static pod directory, by code (only codes with findings are exported)",
      ['node', 'code'],
      (findings) => {
        for (const { observation } of this.currentNodes()) {
          if (!observation) continue
          const byCode = new Map<string, number>()
          for (const f of observation.findings) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1)
          for (const [code, count] of byCode) findings.set({ node: observation.node, code }, count)
        }
      },
    )
    gauge(
      'staticpod_certificate_expiry_seconds',
      "Seconds until the soonest notAfter among the certificates a static pod's flags name (negative: expired), as last read by a certificates query or diagnosis",
      ['node', 'namespace', 'name'],
      (certificates) => {
        const now = this.now()
        for (const seen of this.currentNodes()) {
          for (const [key, cert] of seen.certificates) {
            const slash = key.indexOf('/')
            certificates.set({ node: seen.node, namespace: key.slice(0, slash), name: key.slice(slash + 1) }, Math.round((cert.notAfterMs - now) / 1000))
          }
        }
      },
    )
  }

  eventsRecorded(events: readonly EventRecord[]): void {
    for (const event of events) this.events.inc({ type: event.type })
  }

  nodeRead(node: string, seconds: number, errorCode: string | null): void {
    this.nodeReadDuration.observe({ node }, seconds)
    if (errorCode) this.nodeErrors.inc({ node, code: errorCode })
  }

  graphqlOperation(type: string, outcome: 'ok' | 'error', seconds: number): void {
    this.graphqlOperations.inc({ type, outcome })
    this.graphqlDuration.observe({ type }, seconds)
  }

  /**
   * The store with every call timed (a Proxy: each Store method is one round
   * trip). One wrapper per method, made at its first call (and again if the
   * method is replaced): a 50-node rollout makes some four hundred store
   * calls, and a new closure, timer and async frame for each showed in its profile.
   */
  instrumentStore(store: Store): Store {
    const duration = this.storeDuration
    const timed = new WeakMap<object, (...args: unknown[]) => Promise<unknown>>()
    const wrap = (method: string, call: (...args: unknown[]) => unknown, target: Store) => {
      const observe = (outcome: 'ok' | 'error', started: number): void => duration.observe({ method, outcome }, (performance.now() - started) / 1000)
      return (...args: unknown[]): Promise<unknown> => {
        const started = performance.now()
        let result: Promise<unknown>
        try {
          result = Promise.resolve(call.apply(target, args))
        } catch (err) {
          observe('error', started)
          return Promise.reject(err)
        }
        return result.then(
          (value) => {
            observe('ok', started)
            return value
          },
          (err: unknown) => {
            observe('error', started)
            throw err
          },
        )
      }
    }
    return new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown
        if (typeof value !== 'function' || typeof property !== 'string') return value
        let wrapper = timed.get(value)
        if (!wrapper) timed.set(value, (wrapper = wrap(property, value as (...args: unknown[]) => unknown, target)))
        return wrapper
      },
    })
  }

  /** HTTP counters and the /metrics route. */
  readonly plugin = fp(
    async (app: FastifyInstance) => {
      app.addHook('onResponse', async (request, reply) => {
        const route = request.routeOptions.url ?? 'unmatched'
        this.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) })
        this.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000)
      })
      app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
        reply.type(this.registry.contentType)
        return this.registry.metrics()
      })
    },
    { name: 'staticpod-metrics' },
  )
}
