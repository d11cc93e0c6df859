#!/usr/bin/env node
// A stand-in for crictl, because no container runtime can run in the test
// environment. It answers the commands the agents run, shaped like real
// crictl output, taken from kubernetes-sigs/cri-tools:
//
// - `pods -o json` prints {"items": [...]}, `ps -a -o json` prints
//   {"containers": [...]}: protobuf JSON (int64 timestamps as nanosecond
//   strings), indented by two spaces (cmd/crictl/sandbox.go, container.go).
// - `inspect [-q] -o json <id>...` prints, per id, {"status": <ContainerStatus>}
//   ("info" too without -q; here only {}), the status being the protobuf JSON
//   of k8s.io/cri-api's ContainerStatus with every field (EmitDefaultValues)
//   in the proto's field order, and createdAt/startedAt/finishedAt rewritten
//   as RFC 3339 with nanoseconds; startedAt is Go's zero time for a created
//   container, finishedAt for one not exited (cmd/crictl/container.go:
//   marshalContainerStatus). One id prints the object, several an array of
//   them (cmd/crictl/util.go: outputStatusData, crictl >= 1.31); with
//   "legacyInspect": true in the state, each id's object on its own, one after
//   another, as crictl < 1.31 printed them.
// - `logs [--tail N] [--since S] [--limit-bytes N] [-p|--previous]
//   [-t|--timestamps] <id>` reads the container's log (CRI log format, one
//   record per line) the way k8s.io/cri-client pkg/logs/logs.go ReadLogs
//   does, which crictl calls (cmd/crictl/logs.go): the last N records, those
//   stamped before --since skipped (a Go duration back from now, RFC 3339, or
//   Unix seconds), partial (P) records joined into one line, the timestamp
//   (RFC3339NanoFixed) before each line with --timestamps, stdout records on
//   stdout and stderr records on stderr, cut at --limit-bytes. --previous
//   reads the attempt before (attempt - 1), as crictl does from the log path.
// - Failures as crictl's logrus.Fatal prints them: `time="..." level=fatal
//   msg="..."` on stderr, exit code 1.
//
// The state comes from the file named by FAKE_CRICTL_STATE: { "sandboxes":
// [...], "containers": [...], "stderr"?: string, "exitCode"?: number,
// "delayMs"?: number, "legacyInspect"?: boolean, "failures"?: { "<subcommand>":
// { "exitCode": number, "stderr": string } } }. A container may carry, beside
// crictl's own fields (which are all `ps` prints): "exitCode", "reason",
// "message", "startedAt", "finishedAt" (ISO 8601 or nanosecond strings) for
// inspect, and "log": its log file's records, e.g.
// "2024-06-10T06:13:22.000000001Z stderr F E0610 cannot load certificate".
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

/** The keys this stand-in reads from a state container that crictl ps does not print. */
const STAND_IN_KEYS = new Set(['exitCode', 'reason', 'message', 'startedAt', 'finishedAt', 'log'])

function fatal(message) {
  process.stderr.write(`time="${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}" level=fatal msg=${JSON.stringify(message)}\n`)
  process.exit(1)
}

function failIfAsked(subcommand) {
  if (state.exitCode) {
    process.stderr.write(state.stderr ?? 'time="2024-06-10T06:13:20Z" level=fatal msg="failed"\n')
    process.exit(state.exitCode)
  }
  const failure = state.failures?.[subcommand]
  if (failure) {
    process.stderr.write(failure.stderr ?? 'time="2024-06-10T06:13:20Z" level=fatal msg="failed"\n')
    process.exit(failure.exitCode ?? 1)
  }
}

function finish(subcommand, output) {
  failIfAsked(subcommand)
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`)
}

// ---- times -------------------------------------------------------------------

/** Nanoseconds since the epoch, from a nanosecond string or number or an ISO 8601 / RFC 3339 string. */
function toNanos(value) {
  if (value === undefined || value === null || value === '') return 0n
  if (typeof value === 'number' || /^\d+$/.test(value)) return BigInt(value)
  const m = /^(.*?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(value)
  if (!m) throw new Error(`fake crictl: not a time: ${value}`)
  return BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'))
}

/** Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped), as time.Unix(0, ns).Format prints it with TZ=UTC. */
function rfc3339Nano(ns) {
  if (ns === 0n) return '0001-01-01T00:00:00Z'
  const seconds = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19)
  const fraction = String(ns % 1_000_000_000n).padStart(9, '0').replace(/0+$/, '')
  return `${seconds}${fraction ? `.${fraction}` : ''}Z`
}

/** A CRI log timestamp (RFC3339NanoLenient) as cri-client prints it: RFC3339NanoFixed, a zero offset as Z. */
function parseLogTime(text) {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(text)
  if (!m) return null
  const fraction = (m[2] ?? '').padEnd(9, '0')
  const zone = m[3] === 'Z' || /^[+-]00:00$/.test(m[3]) ? 'Z' : m[3]
  const ns = BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n + BigInt(fraction)
  return { ns, fixed: `${m[1]}.${fraction}${zone}` }
}

/** crictl's --since: a Go duration back from now, else RFC 3339, else Unix seconds (pkg/timetype GetTimestamp); whole seconds, as time.Unix(s, ns). */
function parseSince(value) {
  const units = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)]
  if (value !== '0' && parts.length > 0 && parts.map((p) => p[0]).join('') === value) {
    const seconds = parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]], 0)
    return BigInt(Math.floor(Date.now() / 1000 - seconds)) * 1_000_000_000n
  }
  if (/^\d+(\.\d+)?$/.test(value)) return BigInt(Math.floor(Number(value))) * 1_000_000_000n
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) fatal(`failed to parse timestamp ${value}`)
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n
}

// ---- containers ------------------------------------------------------------------

function findContainer(id) {
  const containers = state.containers ?? []
  const exact = containers.find((c) => c.id === id)
  if (exact) return exact
  // The runtime accepts a unique prefix of an id (crictl prints 13 characters).
  const matches = containers.filter((c) => c.id.startsWith(id))
  return matches.length === 1 ? matches[0] : null
}

function psView(container) {
  return Object.fromEntries(Object.entries(container).filter(([key]) => !STAND_IN_KEYS.has(key)))
}

function sandboxOf(container) {
  return (state.sandboxes ?? []).find((s) => s.id === container.podSandboxId)
}

function logPathOf(container) {
  const sandbox = sandboxOf(container)
  const meta = sandbox?.metadata ?? {}
  return `/var/log/pods/${meta.namespace}_${meta.name}_${meta.uid}/${container.metadata?.name}/${container.metadata?.attempt ?? 0}.log`
}

/** k8s.io/cri-api ContainerStatus as crictl inspect prints it (marshalContainerStatus). */
function containerStatus(container) {
  const created = toNanos(container.createdAt)
  const state = container.state
  const started = state === 'CONTAINER_CREATED' ? 0n : container.startedAt !== undefined ? toNanos(container.startedAt) : created + 100_000_000n
  const finished = state === 'CONTAINER_EXITED' ? (container.finishedAt !== undefined ? toNanos(container.finishedAt) : started + 1_000_000_000n) : 0n
  const exitCode = state === 'CONTAINER_EXITED' ? (container.exitCode ?? 0) : 0
  // containerd's CRI: an exited container without a reason of its own is Completed (exit 0) or Error.
  const reason = container.reason ?? (state === 'CONTAINER_EXITED' ? (exitCode === 0 ? 'Completed' : 'Error') : '')
  return {
    id: container.id,
    metadata: { name: container.metadata?.name ?? '', attempt: container.metadata?.attempt ?? 0 },
    state,
    createdAt: rfc3339Nano(created),
    startedAt: rfc3339Nano(started),
    finishedAt: rfc3339Nano(finished),
    exitCode,
    image: container.image ?? null,
    imageRef: container.imageRef ?? '',
    reason,
    message: container.message ?? '',
    labels: container.labels ?? {},
    annotations: container.annotations ?? {},
    mounts: [],
    logPath: logPathOf(container),
    resources: {
      linux: { cpuPeriod: '100000', cpuQuota: '0', cpuShares: '256', memoryLimitInBytes: '0', oomScoreAdj: '-997', cpusetCpus: '', cpusetMems: '', hugepageLimits: [], unified: {}, memorySwapLimitInBytes: '0' },
      windows: null,
    },
    imageId: container.imageRef ?? '',
    user: { linux: { uid: '0', gid: '0', supplementalGroups: ['0'] } },
    stopSignal: 'RUNTIME_DEFAULT',
  }
}

function inspect(rest) {
  let quiet = false
  const ids = []
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]
    if (arg === '-q' || arg === '--quiet') quiet = true
    else if (arg === '-o' || arg === '--output') {
      if (rest[++i] !== 'json') fatal(`fake crictl: only -o json is supported, got ${rest[i]}`)
    } else if (arg.startsWith('-')) fatal(`flag provided but not defined: ${arg}`)
    else ids.push(arg)
  }
  if (ids.length === 0) fatal('ID cannot be empty')
  failIfAsked('inspect')
  const documents = ids.map((id) => {
    const container = findContainer(id)
    if (!container) fatal(`get the status of containers: get container status: rpc error: code = NotFound desc = an error occurred when try to find container "${id}": not found`)
    return quiet ? { status: containerStatus(container) } : { info: {}, status: containerStatus(container) }
  })
  if (state.legacyInspect) {
    for (const document of documents) process.stdout.write(`${JSON.stringify(document, null, 2)}\n`)
    return
  }
  process.stdout.write(`${JSON.stringify(documents.length === 1 ? documents[0] : documents, null, 2)}\n`)
}

function logs(rest) {
  const options = { tail: -1, limitBytes: -1, since: null, previous: false, timestamps: false }
  let id = null
  for (let i = 0; i < rest.length; i++) {
    let arg = rest[i]
    let value
    const eq = arg.indexOf('=')
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1)
      arg = arg.slice(0, eq)
    }
    const next = () => value ?? rest[++i]
    if (arg === '--tail') options.tail = Number(next())
    else if (arg === '--limit-bytes') options.limitBytes = Number(next())
    else if (arg === '--since') options.since = parseSince(next())
    else if (arg === '-p' || arg === '--previous') options.previous = true
    else if (arg === '-t' || arg === '--timestamps') options.timestamps = true
    else if (arg.startsWith('-')) fatal(`flag provided but not defined: ${arg}`)
    else if (id === null) id = arg
    else fatal('crictl logs takes one CONTAINER-ID')
  }
  if (id === null) fatal('ID cannot be empty')
  failIfAsked('logs')
  let container = findContainer(id)
  if (!container) fatal(`rpc error: code = NotFound desc = an error occurred when try to find container "${id}": not found`)
  if (options.previous) {
    const attempt = container.metadata?.attempt ?? 0
    if (attempt === 0) fatal(`previous terminated container ${container.metadata?.name} not found`)
    const before = (state.containers ?? []).find(
      (c) => c.podSandboxId === container.podSandboxId && c.metadata?.name === container.metadata?.name && (c.metadata?.attempt ?? 0) === attempt - 1,
    )
    const path = logPathOf(container).replace(/\d+\.log$/, `${attempt - 1}.log`)
    if (!before) fatal(`failed to try resolving symlinks in path "${path}": lstat ${path}: no such file or directory`)
    container = before
  }
  let records = container.log ?? []
  // findTailLineStartIndex: the last N lines of the file, whatever their tag.
  if (options.tail >= 0) records = options.tail === 0 ? [] : records.slice(-options.tail)
  let remain = options.limitBytes >= 0 ? options.limitBytes : Infinity
  let isNewLine = true
  const out = { stdout: [], stderr: [] }
  for (const record of records) {
    // parseCRILog: timestamp, stream, tag, content; a line it cannot parse is skipped.
    const m = /^(\S+) (stdout|stderr) (\S+) (.*)$/s.exec(record)
    const time = m ? parseLogTime(m[1]) : null
    if (!m || !time) continue
    const partial = m[3].split(':')[0] === 'P'
    // The file's newline ends every record; a partial record's is trimmed.
    let content = m[4] + (partial ? '' : '\n')
    if (options.since !== null && time.ns < options.since) continue
    if (options.timestamps && isNewLine) content = `${time.fixed} ${content}`
    let bytes = Buffer.from(content, 'utf8')
    if (bytes.length > remain) bytes = bytes.subarray(0, remain)
    out[m[2]].push(bytes)
    remain -= bytes.length
    if (remain <= 0) break
    isNewLine = content.endsWith('\n')
  }
  process.stdout.write(Buffer.concat(out.stdout))
  process.stderr.write(Buffer.concat(out.stderr))
}

const command = args.join(' ')
const run = () => {
  if (command === 'pods -o json') return finish('pods', { items: state.sandboxes ?? [] })
  if (command === 'ps -a -o json') return finish('ps', { containers: (state.containers ?? []).map(psView) })
  if (args[0] === 'inspect') return inspect(args.slice(1))
  if (args[0] === 'logs') return logs(args.slice(1))
  process.stderr.write(`fake crictl: unsupported arguments: ${command}\n`)
  process.exit(1)
}
if (state.delayMs) setTimeout(run, state.delayMs)
else run()
