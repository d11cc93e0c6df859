// The API server client: the few calls this service makes, each with a short
// deadline. @kubernetes/client-node is imported on the first call, not at
// start: it costs hundreds of milliseconds to load, and a serverless cold start
// or a break-glass session without an API server should not pay for it.

import type { CoreV1Api, KubeConfig, V1Node, V1Pod, VersionApi } from '@kubernetes/client-node'

/** Where the API server's address and credentials come from. */
export type KubeSource = { kind: 'kubeconfig'; path: string } | { kind: 'in-cluster' }

export interface KubeApi {
  /** gitVersion of GET /version, e.g. v1.31.4. */
  version(): Promise<string>
  /** GET /api/v1/pods with selectors. */
  listPods(selectors: { fieldSelector?: string | undefined; labelSelector?: string | undefined }): Promise<V1Pod[]>
  /** GET /api/v1/nodes with selectors. */
  listNodes(selectors: { fieldSelector?: string | undefined; labelSelector?: string | undefined }): Promise<V1Node[]>
  /** GET one pod. */
  readPod(namespace: string, name: string): Promise<V1Pod>
  /** DELETE one pod. */
  deletePod(namespace: string, name: string): Promise<void>
}

/** The API server answered with an HTTP error status (it is reachable). */
export class KubeStatusError extends Error {
  override readonly name = 'KubeStatusError'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** No answer within the deadline. */
export class KubeTimeoutError extends Error {
  override readonly name = 'KubeTimeoutError'
}

/**
 * A client for the configured API server. Nothing is loaded or contacted until
 * the first call; every call fails after requestTimeoutMs without an answer.
 */
export function lazyKubeApi(source: KubeSource, requestTimeoutMs: number, loadModule: () => Promise<ClientNode> = importClientNode): KubeApi {
  let clients: Promise<Clients> | null = null
  const load = () => {
    clients ??= loadClients(source, loadModule)
    // A kubeconfig that failed to load is read again on the next call (it may have been fixed).
    clients.catch(() => (clients = null))
    return clients
  }
  const call = async <T>(what: string, fn: (c: Clients, options: RequestOptions) => Promise<T>): Promise<T> => {
    const c = await load()
    return withDeadline(what, requestTimeoutMs, (signal) => fn(c, c.abortableBy(signal)))
  }
  return {
    version: () => call('GET /version', async (c, o) => (await c.version.getCode(o)).gitVersion),
    listPods: (s) => call('list pods', async (c, o) => (await c.core.listPodForAllNamespaces(s, o)).items),
    listNodes: (s) => call('list nodes', async (c, o) => (await c.core.listNode(s, o)).items),
    readPod: (namespace, name) => call(`get pod ${namespace}/${name}`, (c, o) => c.core.readNamespacedPod({ namespace, name }, o)),
    deletePod: (namespace, name) => call(`delete pod ${namespace}/${name}`, async (c, o) => void (await c.core.deleteNamespacedPod({ namespace, name }, o))),
  }
}

type RequestOptions = Parameters<CoreV1Api['listNode']>[1]

interface Clients {
  core: CoreV1Api
  version: VersionApi
  /** Per-call options whose middleware hands the request an abort signal. */
  abortableBy(signal: AbortSignal): RequestOptions
}

type ClientNode = typeof import('@kubernetes/client-node')

const importClientNode = (): Promise<ClientNode> => import('@kubernetes/client-node')

async function loadClients(source: KubeSource, loadModule: () => Promise<ClientNode>): Promise<Clients> {
  const k8s = await loadModule()
  const kc: KubeConfig = new k8s.KubeConfig()
  if (source.kind === 'kubeconfig') kc.loadFromFile(source.path)
  else kc.loadFromCluster()
  plainHttpWithoutTlsOptions(kc)
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    version: kc.makeApiClient(k8s.VersionApi),
    abortableBy: (signal) => ({
      middleware: [
        {
          pre: (context) => {
            context.setSignal(signal)
            return new k8s.Observable(Promise.resolve(context))
          },
          post: (response) => new k8s.Observable(Promise.resolve(response)),
        },
      ],
      middlewareMergeStrategy: 'append',
    }),
  }
}

/**
 * A plain http:// server (kubectl proxy, an API server's insecure port behind
 * a tunnel) needs no TLS options, and kubectl takes such a kubeconfig as it
 * is. client-node 1.x refuses one unless `insecure-skip-tls-verify` is set: its
 * KubeConfig.createAgent (node_modules/@kubernetes/client-node/dist/config.js)
 * throws "HTTP protocol is not allowed when skipTLSVerify is not set or false"
 * and otherwise makes an http.Agent, where the flag only sets
 * rejectUnauthorized, an option plain HTTP has no use for. So the flag is set
 * on the current cluster when its server is http:// and there is nothing it
 * could loosen: an https:// server keeps its verification, and a cluster with
 * a proxy-url is left as it is (client-node takes it without the flag, and
 * there the flag would reach the TLS of an https proxy).
 */
function plainHttpWithoutTlsOptions(kc: KubeConfig): void {
  const current = kc.getCurrentCluster()
  // The same test as client-node's own (case and all), so that the flag lands only where it picks an http.Agent.
  if (!current || current.skipTLSVerify || current.proxyUrl || !current.server.startsWith('http:')) return
  // Cluster objects are read-only; the kubeconfig is loaded again with this one replaced.
  kc.loadFromOptions({
    clusters: kc.clusters.map((c) => (c === current ? { ...c, skipTLSVerify: true } : c)),
    contexts: kc.contexts,
    users: kc.users,
    currentContext: kc.currentContext,
  })
}

/** Runs fn with an abort signal; rejects with KubeTimeoutError when the deadline passes, whatever fn does. */
async function withDeadline<T>(what: string, ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new KubeTimeoutError(`${what}: no answer from the API server within ${ms} ms`))
    }, ms)
  })
  try {
    return await Promise.race([fn(controller.signal).catch((err: unknown) => Promise.reject(describeFailure(what, err))), deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** client-node's ApiException carries the status and the Status object's message; network errors their cause. */
function describeFailure(what: string, err: unknown): Error {
  const e = err as { code?: unknown; body?: unknown; message?: unknown; cause?: unknown } | null
  if (e && typeof e.code === 'number' && e.code >= 100) {
    return new KubeStatusError(e.code, `${what}: HTTP ${e.code}: ${statusMessage(e.body) ?? 'error'}`)
  }
  const cause = (e?.cause as { code?: unknown } | undefined)?.code
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return new Error(`${what}: ${typeof cause === 'string' ? `${cause}: ` : ''}${message}`)
}

function statusMessage(body: unknown): string | null {
  if (typeof body === 'string') {
    try {
      return statusMessage(JSON.parse(body))
    } catch {
      return body.slice(0, 200) || null
    }
  }
  const message = (body as { message?: unknown } | null)?.message
  return typeof message === 'string' ? message : null
}
