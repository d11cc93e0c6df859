// Prometheus metrics at /metrics: HTTP and GraphQL requests, per-node agent
// latency and errors, the SSH pool, the API server breaker and store latency.
// One registry per app (not prom-client's global one), so tests and several
// apps in one process do not share counters.

import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { BreakerState } from '../cluster/breaker.ts'
import type { NodeReadObserver } from '../services/node-state.ts'
import type { Store } from '../store/store.ts'

export interface GaugeSources {
  /** Open SSH connections (the pool), when there is a pool. */
  sshConnections?: () => number
  /** The API server's circuit breaker (src/cluster/breaker.ts); null: no API server configured. */
  apiServerBreakerState?: () => BreakerState | null
}

/** The gauge's values: 0 closed (calls go through), 1 open (failing fast), 2 half-open (the next call, or the one running, probes). */
const BREAKER_STATE_VALUES: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 }
const NO_API_SERVER = -1

export class Metrics implements NodeReadObserver {
  readonly registry = new Registry()
  private readonly httpRequests = new Counter({ name: 'staticpod_http_requests_total', help: 'HTTP requests by method, route and status code', labelNames: ['method', 'route', 'status'], registers: [this.registry] })
  private readonly httpDuration = new Histogram({ name: 'staticpod_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly graphqlOperations = new Counter({ name: 'staticpod_graphql_operations_total', help: 'GraphQL operations by type and outcome', labelNames: ['type', 'outcome'], registers: [this.registry] })
  private readonly graphqlDuration = new Histogram({ name: 'staticpod_graphql_operation_duration_seconds', help: 'GraphQL operation latency', labelNames: ['type'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly nodeReadDuration = new Histogram({ name: 'staticpod_node_agent_read_duration_seconds', help: 'Live reads of a node through its agent', labelNames: ['node'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
  private readonly nodeErrors = new Counter({ name: 'staticpod_node_agent_errors_total', help: 'Failed live reads of a node, by error code', labelNames: ['node', 'code'], registers: [this.registry] })
  private readonly storeDuration = new Histogram({ name: 'staticpod_store_operation_duration_seconds', help: 'Store calls by method', labelNames: ['method', 'outcome'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry] })

  constructor(sources: GaugeSources = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: 'staticpod_' })
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

  nodeRead(node: string, seconds: number, errorCode: string | null): void {
    this.nodeReadDuration.observe({ node }, seconds)
    if (errorCode) this.nodeErrors.inc({ node, code: errorCode })
  }

  graphqlOperation(type: string, outcome: 'ok' | 'error', seconds: number): void {
    this.graphqlOperations.inc({ type, outcome })
    this.graphqlDuration.observe({ type }, seconds)
  }

  /** The store with every call timed (a Proxy: each Store method is one round trip). */
  instrumentStore(store: Store): Store {
    const duration = this.storeDuration
    return new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown
        if (typeof value !== 'function' || typeof property !== 'string') return value
        return async (...args: unknown[]) => {
          const end = duration.startTimer({ method: property })
          try {
            const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
            end({ outcome: 'ok' })
            return result
          } catch (err) {
            end({ outcome: 'error' })
            throw err
          }
        }
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
