// The API server side: reachability, Node objects, and the one door every API
// server call goes through (call), which turns "not configured", "known to be
// down" and "did not answer in time" into API_SERVER_UNAVAILABLE. Every static
// pod feature works without it (the break-glass case this service exists for).

import { isIP } from 'node:net'
import { BreakerOpenError, CircuitBreaker, type BreakerState } from '../cluster/breaker.ts'
import { KubeStatusError, KubeTimeoutError, lazyKubeApi, type KubeApi, type KubeSource } from '../cluster/kube.ts'
import { kubernetesNodeView, type KubernetesNodeView } from '../cluster/mirror-pods.ts'
import { ServiceError, type UserError } from '../errors.ts'
import { isDns1123Subdomain } from '../manifest/names.ts'
import type { Label, NodeRecord } from '../domain.ts'
import type { Store } from '../store/store.ts'
import { canSeeNode, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import { parseLabelSelector } from './label-selector.ts'
import { newSshNodeRecord } from './nodes.ts'

export interface ApiServerStatus {
  configured: boolean
  reachable: boolean
  version: string | null
  checkedAt: string | null
  error: string | null
}

export interface ClusterSettings {
  /** KUBECONFIG: a kubeconfig file. */
  kubeconfig: string | undefined
  /** Running in a pod (KUBERNETES_SERVICE_HOST is set): the pod's service account is used when there is no KUBECONFIG. */
  inCluster: boolean
  /** No API server call waits longer than this. */
  requestTimeoutMs: number
  /** After the API server failed to answer, calls fail at once for this long; then one call probes it. */
  retryAfterMs: number
}

export interface ImportNodesResult {
  imported: NodeRecord[]
  skipped: string[]
  userErrors: UserError[]
}

/** NodeService accepts at most this many labels on a node. */
const MAX_LABELS = 64

export class ClusterService {
  private readonly api: KubeApi | null
  private readonly breaker: CircuitBreaker
  private version: string | null = null

  constructor(
    private readonly o: {
      settings: ClusterSettings
      store: Store
      audit: AuditService
      clock: () => Date
      /** Replaces the client made from the settings (tests of the breaker). */
      api?: KubeApi | null
    },
  ) {
    const source = kubeSource(o.settings)
    this.api = o.api !== undefined ? o.api : source && lazyKubeApi(source, o.settings.requestTimeoutMs)
    this.breaker = new CircuitBreaker({ retryAfterMs: o.settings.retryAfterMs, clock: o.clock, isOutage })
  }

  get configured(): boolean {
    return this.api !== null
  }

  /** The breaker in front of the API server (for /metrics); null when none is configured. */
  breakerState(): BreakerState | null {
    return this.api ? this.breaker.state : null
  }

  /**
   * What is known of the API server. Asks it (GET /version) when nothing is
   * known yet or the last answer is older than retryAfterMs, unless the
   * breaker holds calls back: a status query never waits on a server known down.
   */
  async apiServerStatus(): Promise<ApiServerStatus> {
    if (!this.api) return { configured: false, reachable: false, version: null, checkedAt: null, error: notConfigured().message }
    const last = this.breaker.lastOutcome
    const due = !last || this.version === null || this.o.clock().getTime() - Date.parse(last.at) >= this.o.settings.retryAfterMs
    if (due) {
      await this.call(async (api) => (this.version = await api.version())).catch(() => undefined)
    }
    const outcome = this.breaker.lastOutcome
    return {
      configured: true,
      reachable: outcome?.ok ?? false,
      version: this.version,
      checkedAt: outcome?.at ?? null,
      error: outcome?.error ?? null,
    }
  }

  /**
   * Runs one API server call. API_SERVER_UNAVAILABLE: at once when none is
   * configured or the breaker is open, else when it gives no answer within the
   * request timeout. An answer with an error status is NOT_FOUND (404) or
   * API_SERVER_UNAVAILABLE naming the status (e.g. 403: not allowed to read pods).
   */
  async call<T>(fn: (api: KubeApi) => Promise<T>): Promise<T> {
    const api = this.api
    if (!api) throw notConfigured()
    try {
      return await this.breaker.run(() => fn(api))
    } catch (err) {
      if (err instanceof BreakerOpenError) throw unavailable(`the API server is unreachable: ${err.message}`)
      if (err instanceof KubeStatusError && err.status === 404) throw new ServiceError('NOT_FOUND', err.message)
      if (err instanceof KubeStatusError && !isOutage(err)) throw unavailable(`the API server refused the request: ${err.message}`)
      throw unavailable(`the API server is unreachable: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /** The Node objects of these nodes (null: all), by name, in one API call. Nodes the actor may not see are left out. */
  async kubernetesNodes(names: string[] | null, actor: Actor): Promise<Map<string, KubernetesNodeView>> {
    const fieldSelector = names?.length === 1 ? `metadata.name=${names[0]}` : undefined
    const wanted = names && new Set(names)
    const nodes = await this.call((api) => api.listNodes({ fieldSelector }))
    const views = nodes.map(kubernetesNodeView).filter((n): n is KubernetesNodeView => n !== null && (!wanted || wanted.has(n.name)) && canSeeNode(actor, n.name))
    return new Map(views.map((n) => [n.name, n]))
  }

  /**
   * Registers the API server's nodes that the store does not know, as SSH nodes
   * at their InternalIP, unverified (no pinned host key): nothing is read from
   * or written to them until an admin pins a key. Known names are skipped, so
   * running it again changes nothing. Their labels are copied, so that label
   * selectors such as node-role.kubernetes.io/control-plane work at once.
   */
  importNodes(labelSelector: string | null | undefined, actor: Actor): Promise<ImportNodesResult> {
    return this.o.audit.runMutation(
      { action: 'importNodesFromCluster', actor, requires: 'admin', node: null, dryRun: false },
      async (audit) => {
        // Checked here so that a bad selector is VALIDATION_FAILED, not the API server's 400.
        if (labelSelector) parseLabelSelector(labelSelector)
        const found = await this.call((api) => api.listNodes({ labelSelector: labelSelector ?? undefined }))
        const known = new Set((await this.o.store.listNodes()).map((n) => n.name))
        const result: ImportNodesResult = { imported: [], skipped: [], userErrors: [] }
        for (const node of found.map(kubernetesNodeView).filter((n): n is KubernetesNodeView => n !== null).sort((a, b) => a.name.localeCompare(b.name))) {
          // A token limited to some nodes imports only those, and learns nothing of the others.
          if (!canSeeNode(actor, node.name)) continue
          if (known.has(node.name)) {
            result.skipped.push(node.name)
            continue
          }
          const problem = importProblem(node)
          if (problem) {
            result.userErrors.push({ code: 'VALIDATION_FAILED', message: problem, field: null })
            continue
          }
          const record = this.importedRecord(node)
          try {
            await this.o.store.createNode(record)
            result.imported.push(record)
          } catch (err) {
            // Registered by someone else since the list above: it is known now.
            if (err instanceof ServiceError && err.code === 'ALREADY_EXISTS') result.skipped.push(node.name)
            else throw err
          }
        }
        audit.message = `imported: ${result.imported.map((n) => n.name).join(', ') || 'none'}; skipped (already registered): ${result.skipped.join(', ') || 'none'}`
        return result
      },
      (userErrors) => ({ imported: [], skipped: [], userErrors }),
    )
  }

  private importedRecord(node: KubernetesNodeView): NodeRecord {
    const now = this.o.clock().toISOString()
    const labels: Label[] = Object.entries(node.labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .slice(0, MAX_LABELS)
      .map(([key, value]) => ({ key, value }))
    // Port, user and staticPodPath as registerNode leaves them out: the kubelet config tells the path.
    return newSshNodeRecord({ name: node.name, host: node.internalIP as string, labels }, now)
  }
}

function kubeSource(settings: ClusterSettings): KubeSource | null {
  if (settings.kubeconfig) return { kind: 'kubeconfig', path: settings.kubeconfig }
  if (settings.inCluster) return { kind: 'in-cluster' }
  return null
}

/** The server gave no answer, or one that says it cannot serve now: the breaker opens. */
function isOutage(err: unknown): boolean {
  if (err instanceof KubeStatusError) return err.status >= 500 || err.status === 429
  return err instanceof KubeTimeoutError || err instanceof Error
}

function importProblem(node: KubernetesNodeView): string | null {
  if (!isDns1123Subdomain(node.name)) return `node ${node.name}: its name is not a DNS-1123 name; register it by hand`
  if (!node.internalIP || isIP(node.internalIP) === 0) return `node ${node.name} has no InternalIP address; register it by hand with registerNode`
  return null
}

function notConfigured(): ServiceError {
  return unavailable('no API server is configured (set KUBECONFIG, or run in a pod); static pods are read from the nodes')
}

function unavailable(message: string): ServiceError {
  return new ServiceError('API_SERVER_UNAVAILABLE', message)
}
