#!/usr/bin/env node
// A stand-in for crictl, because no container runtime can run in the test
// environment. It answers the two commands the agents run, with JSON shaped
// like real crictl output (protobuf JSON: `pods -o json` prints {"items": [...]},
// `ps -a -o json` prints {"containers": [...]}, int64 timestamps as nanosecond
// strings, indented by two spaces), taken from the file named by
// FAKE_CRICTL_STATE: { "sandboxes": [...], "containers": [...],
// "stderr"?: string, "exitCode"?: number, "delayMs"?: number }.
// Each invocation's argv is appended, one JSON line each, to FAKE_CRICTL_LOG if set.
//
// Without FAKE_CRICTL_STATE, FAKE_CRICTL_MANIFESTS names a staticPodPath and
// FAKE_CRICTL_NODE the node: the runtime then runs every pod defined there,
// one ready sandbox per manifest and one running container per container, as
// a kubelet with a healthy runtime would (the SSH test nodes use this).
import { createHash } from 'node:crypto'
import { appendFileSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const args = process.argv.slice(2)
if (process.env.FAKE_CRICTL_LOG) appendFileSync(process.env.FAKE_CRICTL_LOG, `${JSON.stringify(args)}\n`)

const statePath = process.env.FAKE_CRICTL_STATE
const manifestsDir = process.env.FAKE_CRICTL_MANIFESTS
if (!statePath && !manifestsDir) {
  process.stderr.write('fake crictl: FAKE_CRICTL_STATE is not set\n')
  process.exit(2)
}
const state = statePath ? JSON.parse(readFileSync(statePath, 'utf8')) : await stateFromManifests(manifestsDir, process.env.FAKE_CRICTL_NODE ?? 'node')

async function stateFromManifests(dir, node) {
  const { parse } = await import('yaml')
  const hex = (text) => createHash('sha256').update(text).digest('hex')
  const createdAt = `${BigInt(Date.parse('2024-06-10T05:00:00Z')) * 1_000_000n}`
  const sandboxes = []
  const containers = []
  for (const file of readdirSync(dir).sort()) {
    if (file.startsWith('.')) continue
    let pod
    try {
      pod = parse(readFileSync(join(dir, file), 'utf8'))
    } catch {
      continue // the kubelet skips what it cannot parse
    }
    if (pod?.kind !== 'Pod' || !pod.metadata?.name) continue
    const namespace = pod.metadata.namespace ?? 'default'
    const podName = `${pod.metadata.name}-${node.toLowerCase()}`
    const uid = hex(`${namespace}/${podName}`).slice(0, 32)
    const sandboxId = hex(`sandbox ${uid}`)
    sandboxes.push({
      id: sandboxId,
      metadata: { name: podName, uid, namespace, attempt: 0 },
      state: 'SANDBOX_READY',
      createdAt,
      labels: { 'io.kubernetes.pod.name': podName, 'io.kubernetes.pod.namespace': namespace, 'io.kubernetes.pod.uid': uid },
      annotations: { 'kubernetes.io/config.hash': uid, 'kubernetes.io/config.seen': '2024-06-10T05:00:00.000000000Z', 'kubernetes.io/config.source': 'file' },
      runtimeHandler: '',
    })
    for (const c of pod.spec?.containers ?? []) {
      const imageId = `sha256:${hex(String(c.image))}`
      containers.push({
        id: hex(`container ${uid} ${c.name}`),
        podSandboxId: sandboxId,
        metadata: { name: c.name, attempt: 0 },
        image: { image: imageId, annotations: {}, userSpecifiedImage: String(c.image), runtimeHandler: '' },
        imageRef: imageId,
        state: 'CONTAINER_RUNNING',
        createdAt,
        labels: { 'io.kubernetes.container.name': c.name, 'io.kubernetes.pod.name': podName, 'io.kubernetes.pod.namespace': namespace, 'io.kubernetes.pod.uid': uid },
        annotations: { 'io.kubernetes.container.restartCount': '0' },
      })
    }
  }
  return { sandboxes, containers }
}

function finish(output) {
  if (state.exitCode) {
    process.stderr.write(state.stderr ?? 'time="2024-06-10T06:13:20Z" level=fatal msg="failed"\n')
    process.exit(state.exitCode)
  }
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`)
}

const command = args.join(' ')
const run = () => {
  if (command === 'pods -o json') return finish({ items: state.sandboxes ?? [] })
  if (command === 'ps -a -o json') return finish({ containers: state.containers ?? [] })
  process.stderr.write(`fake crictl: unsupported arguments: ${command}\n`)
  process.exit(1)
}
if (state.delayMs) setTimeout(run, state.delayMs)
else run()
