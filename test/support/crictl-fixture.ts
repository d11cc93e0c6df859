// Realistic crictl output for a control-plane node, field for field as
// containerd's CRI answers and crictl prints them (see fake-crictl.mjs).
// A container may also carry what the stand-in answers `crictl inspect` and
// `crictl logs` from (exit code, reason, times, log records); `crictl ps`
// does not print those.

export interface CrictlSandbox {
  id: string
  metadata: { name: string; uid: string; namespace: string; attempt: number }
  state: string
  createdAt: string
  labels: Record<string, string>
  annotations: Record<string, string>
  runtimeHandler: string
}

export interface CrictlContainer {
  id: string
  podSandboxId: string
  metadata: { name: string; attempt: number }
  image: { image: string; annotations: Record<string, string>; userSpecifiedImage?: string; runtimeHandler: string }
  imageRef: string
  state: string
  createdAt: string
  labels: Record<string, string>
  annotations: Record<string, string>
  // For the stand-in's inspect and logs only (fake-crictl.mjs).
  exitCode?: number
  reason?: string
  message?: string
  /** ISO 8601 / RFC 3339 (nanoseconds allowed) or nanoseconds since the epoch. */
  startedAt?: string
  finishedAt?: string
  /** The container's log file, one CRI log record each (criLogRecord). */
  log?: string[]
}

/**
 * One record of a kubelet log file, in the CRI log format the runtime writes
 * (`<RFC 3339 timestamp> <stdout|stderr> <P|F> <text>`; k8s.io/cri-client
 * pkg/logs/logs.go parseCRILog). P: the line goes on in the next record.
 */
export function criLogRecord(time: string, stream: 'stdout' | 'stderr', text: string, tag: 'P' | 'F' = 'F'): string {
  return `${time} ${stream} ${tag} ${text}`
}

const hex = (seed: string, length = 64): string => seed.repeat(Math.ceil(length / seed.length)).slice(0, length)

/** Nanoseconds since the epoch, as crictl prints int64: a string. */
const ns = (isoTime: string): string => `${BigInt(Date.parse(isoTime)) * 1_000_000n + 123_456n}`

export function sandbox(opts: {
  podName: string
  namespace: string
  id: string
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY'
  createdAt: string
  source?: string
  attempt?: number
}): CrictlSandbox {
  const uid = hex(`${opts.podName.length}f3a`, 32)
  const annotations: Record<string, string> = {
    'kubernetes.io/config.hash': uid,
    'kubernetes.io/config.seen': '2024-06-10T06:13:20.987654321Z',
    'kubernetes.io/config.source': opts.source ?? 'file',
  }
  if (opts.podName.startsWith('kube-apiserver')) {
    annotations['kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint'] = '10.0.0.10:6443'
  }
  return {
    id: hex(opts.id),
    metadata: { name: opts.podName, uid, namespace: opts.namespace, attempt: opts.attempt ?? 0 },
    state: opts.state,
    createdAt: ns(opts.createdAt),
    labels: {
      component: opts.podName.replace(/-cp-1$/, ''),
      'io.kubernetes.pod.name': opts.podName,
      'io.kubernetes.pod.namespace': opts.namespace,
      'io.kubernetes.pod.uid': uid,
      tier: 'control-plane',
    },
    annotations,
    runtimeHandler: '',
  }
}

export function container(opts: {
  name: string
  sandbox: CrictlSandbox
  id: string
  state: string
  createdAt: string
  attempt?: number
  image: string
  /** Older containerd/crictl print no userSpecifiedImage and put the name in image.image. */
  withUserSpecifiedImage?: boolean
  /** What the stand-in's inspect and logs answer (see CrictlContainer). */
  detail?: Pick<CrictlContainer, 'exitCode' | 'reason' | 'message' | 'startedAt' | 'finishedAt' | 'log'>
}): CrictlContainer {
  const imageId = `sha256:${hex(opts.id + 'b7', 64)}`
  const withUserSpecified = opts.withUserSpecifiedImage ?? true
  return {
    id: hex(opts.id),
    podSandboxId: opts.sandbox.id,
    metadata: { name: opts.name, attempt: opts.attempt ?? 0 },
    image: withUserSpecified
      ? { image: imageId, annotations: {}, userSpecifiedImage: opts.image, runtimeHandler: '' }
      : { image: opts.image, annotations: {}, runtimeHandler: '' },
    imageRef: imageId,
    state: opts.state,
    createdAt: ns(opts.createdAt),
    labels: {
      'io.kubernetes.container.name': opts.name,
      'io.kubernetes.pod.name': opts.sandbox.metadata.name,
      'io.kubernetes.pod.namespace': opts.sandbox.metadata.namespace,
      'io.kubernetes.pod.uid': opts.sandbox.metadata.uid,
    },
    annotations: {
      'io.kubernetes.container.hash': 'a1b2c3d4',
      'io.kubernetes.container.restartCount': String(opts.attempt ?? 0),
      'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
      'io.kubernetes.container.terminationMessagePolicy': 'File',
      'io.kubernetes.pod.terminationGracePeriod': '30',
    },
    ...opts.detail,
  }
}

/**
 * Node "CP-1" (mixed case on purpose: the kubelet lowercases it in pod names):
 * kube-apiserver recreated after an edit (old sandbox NOTREADY, new READY, its
 * container restarted once), etcd from an older crictl without
 * userSpecifiedImage, a scheduler whose container is only created, a pod
 * from the API server whose name happens to end in -cp-1 (its sandbox
 * annotations say config.source=api) and a static pod of another node: the
 * last two must not be reported.
 */
export function controlPlaneFixture(): { sandboxes: CrictlSandbox[]; containers: CrictlContainer[] } {
  const oldApiserver = sandbox({
    podName: 'kube-apiserver-cp-1', namespace: 'kube-system', id: '1a', state: 'SANDBOX_NOTREADY', createdAt: '2024-06-10T06:00:00Z',
  })
  const apiserver = sandbox({
    podName: 'kube-apiserver-cp-1', namespace: 'kube-system', id: '2b', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:13:21Z', attempt: 1,
  })
  const etcd = sandbox({ podName: 'etcd-cp-1', namespace: 'kube-system', id: '3c', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:00Z' })
  const scheduler = sandbox({
    podName: 'kube-scheduler-cp-1', namespace: 'kube-system', id: '4d', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:01Z',
  })
  const coredns = sandbox({
    podName: 'coredns-7db6d8ff4d-cp-1', namespace: 'kube-system', id: '5e', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:02Z', source: 'api',
  })
  const otherNode = sandbox({ podName: 'etcd-cp-2', namespace: 'kube-system', id: '6f', state: 'SANDBOX_READY', createdAt: '2024-06-10T05:00:03Z' })
  return {
    // crictl lists newest first; the parser must not rely on it, so mix the order.
    sandboxes: [etcd, oldApiserver, coredns, apiserver, scheduler, otherNode],
    containers: [
      container({ name: 'kube-apiserver', sandbox: oldApiserver, id: '7a', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:00:01Z', image: 'registry.k8s.io/kube-apiserver:v1.30.1' }),
      container({ name: 'kube-apiserver', sandbox: apiserver, id: '8b', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:13:22Z', image: 'registry.k8s.io/kube-apiserver:v1.30.2' }),
      container({ name: 'kube-apiserver', sandbox: apiserver, id: '9c', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T06:13:40Z', attempt: 1, image: 'registry.k8s.io/kube-apiserver:v1.30.2' }),
      container({ name: 'etcd', sandbox: etcd, id: 'ad', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T05:00:05Z', image: 'registry.k8s.io/etcd:3.5.12-0', withUserSpecifiedImage: false }),
      container({ name: 'kube-scheduler', sandbox: scheduler, id: 'be', state: 'CONTAINER_CREATED', createdAt: '2024-06-10T05:00:06Z', image: 'registry.k8s.io/kube-scheduler:v1.30.2' }),
      container({ name: 'coredns', sandbox: coredns, id: 'cf', state: 'CONTAINER_RUNNING', createdAt: '2024-06-10T05:00:07Z', image: 'registry.k8s.io/coredns/coredns:v1.11.1' }),
    ],
  }
}
