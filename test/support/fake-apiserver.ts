// A stand-in Kubernetes API server for tests: no real one can run here (no
// etcd, no kube-apiserver binary, no container runtime). It speaks plain HTTP
// on 127.0.0.1 (as `kubectl proxy` does), or HTTPS with a certificate of the
// test's own CA (as a real API server does), and serves what this service and
// kubectl ask for, with objects
// shaped exactly as a real API server returns them: lists with kind,
// apiVersion and metadata.resourceVersion (their items without kind and
// apiVersion, as the real server sends them), errors as Status objects,
// field selectors as the real server supports them for pods and nodes.
//
// Discovery (/api, /apis, /api/v1) and /version let kubectl talk to it; tests
// prove that with the real kubectl. Every request is recorded so tests can
// count API calls, and stop()/start()/hang() simulate an outage.

import { createHash, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { parseLabelSelector } from '../../src/services/label-selector.ts'

export const KUBE_VERSION = 'v1.31.4'

export type Json = Record<string, any>

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
}

export interface FakeNodeSpec {
  name: string
  internalIP: string
  ready?: boolean
  unschedulable?: boolean
  labels?: Record<string, string>
  kubeletVersion?: string
}

/** HTTPS instead of plain HTTP: the server's key and certificate (PEM), and the CA that signed it. */
export interface FakeApiServerTls {
  key: string
  cert: string
  ca: string
}

export interface KubeconfigOptions {
  /** token (default): the user presents the server's bearer token. none: no user at all, as in a kubeconfig for `kubectl proxy`. */
  user?: 'token' | 'none'
  /** With TLS: put the CA in certificate-authority-data (default true). */
  ca?: boolean | string
}

export class FakeApiServer {
  readonly token = `fake-token-${randomUUID()}`
  readonly requests: RecordedRequest[] = []
  private readonly pods = new Map<string, Json>()
  private readonly nodes = new Map<string, Json>()
  private resourceVersion = 1000
  private server: Server | HttpsServer | null = null
  private readonly sockets = new Set<Socket>()
  private port = 0
  private hanging = false
  private readonly startedAt = rfc3339Now()

  constructor(private readonly tls: FakeApiServerTls | null = null) {}

  /** Listens on 127.0.0.1 (the same port again after a stop()). */
  async start(): Promise<void> {
    if (this.server) return
    this.hanging = false
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res)
    const server: Server | HttpsServer = this.tls ? createHttpsServer({ key: this.tls.key, cert: this.tls.cert }, handler) : createServer(handler)
    // A TLS server's sockets are the TCP ones of 'connection' too, so stop() cuts them alike.
    server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (server.address() as AddressInfo).port
    this.server = server
  }

  /** Stops answering: connections are refused, open ones are cut. */
  async stop(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = null
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Accepts connections but never answers (an API server stuck behind a dead etcd). */
  hang(): void {
    this.hanging = true
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`
  }

  /**
   * A kubeconfig file for this server, as kubectl and client-node read it: over
   * plain HTTP no TLS field at all (none is needed); over HTTPS the CA in
   * certificate-authority-data (options.ca: false leaves it out, a PEM string
   * puts another CA there).
   */
  async writeKubeconfig(path: string, options: KubeconfigOptions = {}): Promise<string> {
    const ca = options.ca === undefined || options.ca === true ? this.tls?.ca : options.ca || undefined
    const user = options.user ?? 'token'
    await writeFile(
      path,
      `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${this.url}
${ca ? `    certificate-authority-data: ${Buffer.from(ca).toString('base64')}\n` : ''}contexts:
- name: fake
  context:
    cluster: fake
${user === 'token' ? '    user: tester\n' : ''}current-context: fake
${
  user === 'token'
    ? `users:
- name: tester
  user:
    token: ${this.token}
`
    : ''
}`,
    )
    return path
  }

  // ---------------------------------------------------------------- counting

  /** Requests recorded since the last reset, optionally of one path prefix (e.g. /api/v1/pods). */
  count(pathPrefix = ''): number {
    return this.requests.filter((r) => r.path.startsWith(pathPrefix)).length
  }

  resetCounts(): void {
    this.requests.length = 0
  }

  // ---------------------------------------------------------------- objects

  addNode(spec: FakeNodeSpec): Json {
    const now = rfc3339Now()
    const node: Json = {
      metadata: {
        name: spec.name,
        uid: randomUUID(),
        resourceVersion: this.nextVersion(),
        creationTimestamp: now,
        labels: {
          'beta.kubernetes.io/arch': 'amd64',
          'beta.kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'kubernetes.io/hostname': spec.name,
          'kubernetes.io/os': 'linux',
          ...spec.labels,
        },
        annotations: {
          'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///var/run/containerd/containerd.sock',
          'node.alpha.kubernetes.io/ttl': '0',
          'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        },
      },
      spec: {
        podCIDR: '10.244.0.0/24',
        podCIDRs: ['10.244.0.0/24'],
        ...(spec.unschedulable ? { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule', timeAdded: now }] } : {}),
      },
      status: {
        capacity: { cpu: '4', 'ephemeral-storage': '61202244Ki', memory: '8025424Ki', pods: '110' },
        allocatable: { cpu: '4', 'ephemeral-storage': '56403987978', memory: '7923024Ki', pods: '110' },
        conditions: [
          condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available', now),
          condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure', now),
          condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available', now),
          spec.ready === false
            ? condition('Ready', 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.', now)
            : condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status', now),
        ],
        addresses: [
          { type: 'InternalIP', address: spec.internalIP },
          { type: 'Hostname', address: spec.name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
        nodeInfo: {
          machineID: randomUUID().replace(/-/g, ''),
          systemUUID: randomUUID(),
          bootID: randomUUID(),
          kernelVersion: '6.1.0-28-amd64',
          osImage: 'Debian GNU/Linux 12 (bookworm)',
          containerRuntimeVersion: 'containerd://1.7.24',
          kubeletVersion: spec.kubeletVersion ?? KUBE_VERSION,
          kubeProxyVersion: spec.kubeletVersion ?? KUBE_VERSION,
          operatingSystem: 'linux',
          architecture: 'amd64',
        },
      },
    }
    this.nodes.set(spec.name, node)
    return node
  }

  getNode(name: string): Json | undefined {
    return this.nodes.get(name)
  }

  /** Creates or replaces a pod, as a POST or PUT would (new resourceVersion; uid and creationTimestamp kept on replace). */
  putPod(pod: Json): Json {
    const key = podKey(pod.metadata.namespace ?? 'default', pod.metadata.name)
    const existing = this.pods.get(key)
    const stored: Json = {
      ...pod,
      metadata: {
        ...pod.metadata,
        namespace: pod.metadata.namespace ?? 'default',
        uid: existing?.metadata.uid ?? pod.metadata.uid ?? randomUUID(),
        creationTimestamp: existing?.metadata.creationTimestamp ?? rfc3339Now(),
        resourceVersion: this.nextVersion(),
      },
    }
    this.pods.set(key, stored)
    return stored
  }

  getPod(namespace: string, name: string): Json | undefined {
    return this.pods.get(podKey(namespace, name))
  }

  deletePod(namespace: string, name: string): Json | undefined {
    const key = podKey(namespace, name)
    const pod = this.pods.get(key)
    if (pod) {
      this.pods.delete(key)
      this.nextVersion()
    }
    return pod
  }

  allPods(): Json[] {
    return [...this.pods.values()]
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake')
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams) })
    if (this.hanging) return // never answers; the client's deadline must fire
    for await (const _ of req) {
      // drain the body (DeleteOptions): nothing in it changes what this stand-in does
    }
    // A wrong token is refused. None at all is let in, as a server with anonymous
    // access would: kubectl sends no bearer token over plain http.
    const auth = req.headers.authorization
    if (auth !== undefined && auth !== `Bearer ${this.token}`) {
      return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'))
    }
    try {
      const answer = this.route(req.method ?? 'GET', url)
      send(res, answer.code, answer.body)
    } catch (err) {
      if (err instanceof HttpError) send(res, err.code, { ...status(err.code, err.reason, err.message), ...(err.details ? { details: err.details } : {}) })
      else send(res, 500, status(500, 'InternalError', String(err)))
    }
  }

  private route(method: string, url: URL): { code: number; body: Json } {
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const q = url.searchParams
    const get = method === 'GET'
    if (get && path === '/version') return ok(versionInfo())
    if (get && path === '/api') return ok({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] })
    if (get && path === '/apis') return ok({ kind: 'APIGroupList', apiVersion: 'v1', groups: [] })
    if (get && path === '/api/v1') return ok(apiResources())
    if (get && path === '/api/v1/pods') return ok(this.podList([...this.pods.values()], q))
    if (get && path === '/api/v1/nodes') return ok(this.nodeList(q))
    if (get && path === '/api/v1/namespaces') return ok({ kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) }, items: this.namespaces() })
    let m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path)
    if (get && m) {
      const name = decodeURIComponent(m[1]!)
      // kubectl asks for the namespace after a NotFound, to tell a missing namespace from a missing pod.
      return ok(withKind('Namespace', this.namespaces().find((n) => n.metadata.name === name) ?? notFound('namespaces', name)))
    }
    m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path)
    if (get && m) return ok(withKind('Node', this.nodes.get(decodeURIComponent(m[1]!)) ?? notFound('nodes', decodeURIComponent(m[1]!))))
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(path)
    if (get && m) {
      const ns = decodeURIComponent(m[1]!)
      return ok(this.podList([...this.pods.values()].filter((p) => p.metadata.namespace === ns), q))
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(path)
    if (m) {
      const [ns, name] = [decodeURIComponent(m[1]!), decodeURIComponent(m[2]!)]
      const pod = this.pods.get(podKey(ns, name)) ?? notFound('pods', name)
      if (get) return ok(withKind('Pod', pod))
      if (method === 'DELETE') {
        this.deletePod(ns, name)
        // The object as it was, marked for deletion, is what a DELETE answers with.
        return ok(withKind('Pod', { ...pod, metadata: { ...pod.metadata, deletionTimestamp: rfc3339Now(), deletionGracePeriodSeconds: 0 } }))
      }
      throw new HttpError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`)
    }
    throw new HttpError(404, 'NotFound', 'the server could not find the requested resource')
  }

  private podList(pods: Json[], q: URLSearchParams): Json {
    const items = select(pods, q, POD_FIELDS)
    return { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) }, items: sortByKey(items) }
  }

  private nodeList(q: URLSearchParams): Json {
    const items = select([...this.nodes.values()], q, NODE_FIELDS)
    return { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) }, items: sortByKey(items) }
  }

  /** The namespaces kubeadm creates, and those of the pods there are. */
  private namespaces(): Json[] {
    const names = new Set(['default', 'kube-node-lease', 'kube-public', 'kube-system', ...[...this.pods.values()].map((p) => p.metadata.namespace as string)])
    return [...names].sort().map((name) => ({
      metadata: { name, uid: namespaceUid(name), resourceVersion: '1', creationTimestamp: this.startedAt, labels: { 'kubernetes.io/metadata.name': name } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    }))
  }

  private nextVersion(): string {
    this.resourceVersion += 1
    return String(this.resourceVersion)
  }
}

// ---------------------------------------------------------------- selectors

type FieldGetter = (o: Json) => string | undefined

/** The field selectors the real API server supports for these kinds (a subset: what tools use). */
const POD_FIELDS: Record<string, FieldGetter> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
  'spec.nodeName': (o) => o.spec?.nodeName ?? '',
  'status.phase': (o) => o.status?.phase ?? '',
}
const NODE_FIELDS: Record<string, FieldGetter> = {
  'metadata.name': (o) => o.metadata.name,
  'spec.unschedulable': (o) => String(o.spec?.unschedulable ?? false),
}

function select(objects: Json[], q: URLSearchParams, fields: Record<string, FieldGetter>): Json[] {
  const fieldSelector = q.get('fieldSelector')
  const labelSelector = q.get('labelSelector')
  let out = objects
  if (fieldSelector) {
    const requirements = fieldSelector.split(',').map((r) => {
      const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(r.trim())
      if (!m) throw new HttpError(400, 'BadRequest', `invalid field selector: ${r}`)
      const getter = fields[m[1]!]
      if (!getter) throw new HttpError(400, 'BadRequest', `field label not supported: ${m[1]}`)
      return { getter, negate: m[2] === '!=', value: m[3]! }
    })
    out = out.filter((o) => requirements.every((r) => (r.getter(o) === r.value) !== r.negate))
  }
  if (labelSelector) {
    let matches: (labels: Array<{ key: string; value: string }>) => boolean
    try {
      matches = parseLabelSelector(labelSelector)
    } catch (err) {
      throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`)
    }
    out = out.filter((o) => matches(Object.entries(o.metadata.labels ?? {}).map(([key, value]) => ({ key, value: String(value) }))))
  }
  return out
}

// ---------------------------------------------------------------- shapes

class HttpError extends Error {
  details: Json | undefined
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message)
  }
}

function notFound(resource: string, name: string): never {
  throw Object.assign(new HttpError(404, 'NotFound', `${resource} "${name}" not found`), { details: { name, kind: resource } })
}

function status(code: number, reason: string, message: string): Json {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }
}

const ok = (body: Json) => ({ code: 200, body })

/** A single object carries kind and apiVersion; list items do not. */
function withKind(kind: string, object: Json): Json {
  return { kind, apiVersion: 'v1', ...object }
}

function send(res: ServerResponse, code: number, body: Json): void {
  const text = JSON.stringify(body)
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'audit-id': randomUUID() })
  res.end(text)
}

/** A stable uid per namespace name (the stand-in keeps no namespace objects). */
function namespaceUid(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`
}

function sortByKey(items: Json[]): Json[] {
  return [...items].sort((a, b) => podKey(a.metadata.namespace ?? '', a.metadata.name).localeCompare(podKey(b.metadata.namespace ?? '', b.metadata.name)))
}

function condition(type: string, statusValue: string, reason: string, message: string, at: string): Json {
  return { type, status: statusValue, lastHeartbeatTime: at, lastTransitionTime: at, reason, message }
}

function versionInfo(): Json {
  return {
    major: '1',
    minor: '31',
    gitVersion: KUBE_VERSION,
    gitCommit: 'a78aa47129b8539636eb86a9d00e31b2720fe06b',
    gitTreeState: 'clean',
    buildDate: '2024-12-10T18:40:00Z',
    goVersion: 'go1.22.9',
    compiler: 'gc',
    platform: 'linux/amd64',
  }
}

function apiResources(): Json {
  return {
    kind: 'APIResourceList',
    groupVersion: 'v1',
    resources: [
      { name: 'namespaces', singularName: 'namespace', namespaced: false, kind: 'Namespace', verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], shortNames: ['ns'], storageVersionHash: 'Q3oi5N2YM8M=' },
      { name: 'nodes', singularName: 'node', namespaced: false, kind: 'Node', verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'], shortNames: ['no'], storageVersionHash: 'XwShjMxG9Fs=' },
      { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'], shortNames: ['po'], categories: ['all'], storageVersionHash: 'xPOwRZ+Yhw8=' },
    ],
  }
}

/** The API server's timestamps: RFC 3339, UTC, whole seconds. */
export function rfc3339Now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
}
