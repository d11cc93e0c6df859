// What a node tells about why a pod does not run, read on the node itself,
// with the API server down: a container's log (crictl logs, or the kubelet's
// own file where crictl is missing or cannot answer), the kubelet's journal,
// and files the caller names (certificates, kubeconfigs). Written once for
// both agents: each hands in how it runs a command on its node (local.ts:
// a child process; ssh.ts: an exec channel, through sudo -n for crictl on a
// SUDO node) and its NodeFileSystem (the local filesystem, or SFTP: the sudo
// SFTP session on a SUDO node). No rules here: which file, who may read a
// log, what it means, are the services'.
//
// Every command is a fixed argument list whose only variable words are
// container ids crictl itself listed (checked to be hex) and whole numbers
// (crictl.ts, journal.ts). Output is bounded where it is read: the last
// limitBytes (+ slack) of each stream are kept (output-tail.ts), never more.

import { posix } from 'node:path'
import { ServiceError } from '../errors.ts'
import {
  CONTAINER_LOG_MAX_BYTES,
  KUBELET_JOURNAL_MAX_LINES,
  NodeFileRefusedError,
  type ContainerLogRequest,
  type ContainerLogResult,
  type KubeletJournalRequest,
  type KubeletJournalResult,
} from './agent.ts'
import { linesFromCriFile, linesFromCrictlLogs, scanCriWindow, type KeptText, type LogLines } from './cri-log.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES, CRICTL_PODS_ARGS, crictlLogsArgs, readCrictl, type ContainerAttempt } from './crictl.ts'
import { journalctlArgs, parseJournalJson } from './journal.ts'
import { isNoSuchFile, type NodeFileSystem, type OpenedFile } from './node-fs.ts'

/** What became of a command run on the node. */
export type CommandOutcome =
  | { ran: true; exitCode: number | null; signal: string | null; stdout: KeptText; stderr: KeptText }
  /** It did not run: missing (no such command on the node) or refused (sudo said no); reason in fixed words. */
  | { ran: false; missing: boolean; reason: string }

/** Runs a command (argv after its name, checked words only) on the node, keeping the last keepBytes of each output stream. */
export type RunCommand = (args: readonly string[], keepBytes: number) => Promise<CommandOutcome>

export interface DiagnosticsAccess {
  nodeName: string
  crictl: RunCommand
  journalctl: RunCommand
  fs: NodeFileSystem
  /** The kubelet's podLogsDir on the node (/var/log/pods). */
  podLogDir: string
  clock: () => Date
}

/** Kept beyond limitBytes per stream, so that the lines that fit are whole even when a stream was cut. */
const LOG_KEEP_SLACK_BYTES = 64 * 1024
/** Read back from the end of a log file this much at first, twice as much each time after. */
const LOG_READ_FIRST_BYTES = 64 * 1024
/** journalctl's output kept: 10,000 kubelet lines of ordinary length, not one giant field more. */
const JOURNAL_KEEP_BYTES = 16 * 1024 * 1024
const MAX_TAIL_LINES = 100_000
/** Ten years. */
const MAX_SINCE_SECONDS = 10 * 366 * 24 * 3600
/** Linux PATH_MAX. */
const MAX_PATH_BYTES = 4096

// Kubernetes names (k8s.io/apimachinery validation): a namespace and a container name are
// DNS-1123 labels, a pod name a DNS-1123 subdomain. None can hold '/', '_' or a NUL.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/
const ATTEMPT_LOG_FILE = /^(\d{1,9})\.log$/

// ---- container logs ------------------------------------------------------------

/** The log of one container attempt: crictl first; the kubelet's file where crictl is missing or cannot list. */
export async function readContainerLog(access: DiagnosticsAccess, req: ContainerLogRequest): Promise<ContainerLogResult | null> {
  checkLogRequest(req)
  const listing = await listRuntime(access)
  let crictlAbsent: { reason: string; missing: boolean; gone?: boolean } | null = 'reading' in listing ? null : listing
  if ('reading' in listing) {
    const target = listing.reading.locate(req.namespace, req.pod, req.container, req.previous)
    if (!target) return null
    const fromCrictl = await crictlLog(access, target, req)
    if ('lines' in fromCrictl) return fromCrictl
    // crictl went away since it listed, or sudo allows it to list and not to read logs: the files, as root reads them.
    crictlAbsent = fromCrictl
  }
  const fromFile = await fileLog(access, req)
  if (fromFile || crictlAbsent === null || crictlAbsent.missing) return fromFile
  if (crictlAbsent.gone) {
    throw new ServiceError('NOT_FOUND', `node ${access.nodeName}: the attempt of container ${req.container} is gone (${crictlAbsent.reason}), and ${access.podLogDir} has no log of it; ask again`, ['container'])
  }
  throw new Error(
    `node ${access.nodeName}: ${crictlAbsent.reason}, and ${access.podLogDir} has no log of ${req.namespace}/${req.pod} container ${req.container}${req.previous ? ' (previous attempt)' : ''}`,
  )
}

function checkLogRequest(req: ContainerLogRequest): void {
  const invalid = (field: string, why: string): never => {
    throw new ServiceError('VALIDATION_FAILED', `${field} ${why}`, [field])
  }
  if (typeof req.namespace !== 'string' || req.namespace.length > 63 || !DNS1123_LABEL.test(req.namespace)) invalid('namespace', 'must be a Kubernetes namespace name')
  if (typeof req.pod !== 'string' || req.pod.length > 253 || !DNS1123_SUBDOMAIN.test(req.pod)) invalid('pod', 'must be a Kubernetes pod name')
  if (typeof req.container !== 'string' || req.container.length > 63 || !DNS1123_LABEL.test(req.container)) invalid('container', 'must be a Kubernetes container name')
  if (typeof req.previous !== 'boolean') invalid('previous', 'must be true or false')
  if (req.tailLines !== null && !isWhole(req.tailLines, 0, MAX_TAIL_LINES)) invalid('tailLines', `must be a whole number from 0 to ${MAX_TAIL_LINES}`)
  if (req.sinceSeconds !== null && !isWhole(req.sinceSeconds, 1, MAX_SINCE_SECONDS)) invalid('sinceSeconds', `must be a whole number from 1 to ${MAX_SINCE_SECONDS}`)
  if (!isWhole(req.limitBytes, 1, CONTAINER_LOG_MAX_BYTES)) invalid('limitBytes', `must be a whole number from 1 to ${CONTAINER_LOG_MAX_BYTES}`)
}

function isWhole(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
}

type Listing = { reading: ReturnType<typeof readCrictl> } | { reason: string; missing: boolean }

/** crictl's two listings, as a runtime read runs them; why not, when crictl cannot answer. */
async function listRuntime(access: DiagnosticsAccess): Promise<Listing> {
  const [pods, containers] = await Promise.all([
    access.crictl(CRICTL_PODS_ARGS, CRICTL_MAX_OUTPUT_BYTES),
    access.crictl(CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES),
  ])
  for (const [outcome, args] of [
    [pods, CRICTL_PODS_ARGS],
    [containers, CRICTL_CONTAINERS_ARGS],
  ] as const) {
    if (!outcome.ran) return { reason: outcome.reason, missing: outcome.missing }
    const failed = commandFailure(outcome, `crictl ${args.join(' ')}`)
    if (failed) return { reason: failed, missing: false }
    if (outcome.stdout.cut) return { reason: `crictl ${args.join(' ')} printed more than ${CRICTL_MAX_OUTPUT_BYTES} bytes`, missing: false }
  }
  if (!pods.ran || !containers.ran) throw new Error('unreachable')
  try {
    return { reading: readCrictl(pods.stdout.text, containers.stdout.text, access.nodeName, access.clock()) }
  } catch (err) {
    return { reason: err instanceof Error ? err.message : String(err), missing: false }
  }
}

/** `<command> failed: <its last words>` for a command that ran and failed; null when it succeeded. */
function commandFailure(outcome: Extract<CommandOutcome, { ran: true }>, command: string): string | null {
  if (outcome.exitCode === 0) return null
  const lastLine = outcome.stderr.text.trim().split('\n').slice(-1)[0]
  const status = outcome.exitCode !== null ? `exit code ${outcome.exitCode}` : `signal ${outcome.signal ?? 'unknown'}`
  return `${command} failed: ${lastLine || status}`
}

/** `crictl logs` of the attempt; why not, when it did not run (gone since it listed, or refused by sudo). */
async function crictlLog(access: DiagnosticsAccess, target: ContainerAttempt, req: ContainerLogRequest): Promise<ContainerLogResult | { reason: string; missing: boolean; gone?: boolean }> {
  const args = crictlLogsArgs(target.containerId, { tailLines: req.tailLines, sinceSeconds: req.sinceSeconds })
  const outcome = await access.crictl(args, req.limitBytes + LOG_KEEP_SLACK_BYTES)
  if (!outcome.ran) return { reason: outcome.reason, missing: outcome.missing }
  const failed = commandFailure(outcome, `crictl ${args.slice(0, -1).join(' ')} ${target.containerId.slice(0, 13)}`)
  // The attempt can be removed between the listing and this (a crash loop replaces them every few seconds):
  // the kubelet's log file may still have it.
  if (failed) return { reason: failed, missing: false, gone: /not ?found/i.test(failed) }
  const read = linesFromCrictlLogs(outcome.stdout, outcome.stderr, { tailLines: req.tailLines, limitBytes: req.limitBytes })
  return { ...read, source: 'crictl', attempt: target.attempt, containerId: target.containerId }
}

/**
 * The kubelet's file of the attempt: the pod's directory found by listing
 * podLogDir (`<namespace>_<pod>-<node>_<uid>`: a pod recreated by a manifest
 * change has a new uid, so the directory whose logs were written last), the
 * attempt by its file name (`<attempt>.log`, the highest is the current one).
 */
async function fileLog(access: DiagnosticsAccess, req: ContainerLogRequest): Promise<ContainerLogResult | null> {
  const { fs, podLogDir } = access
  const prefix = `${req.namespace}_${req.pod}-${access.nodeName.toLowerCase()}_`
  const podDirs = (await readDirOrEmpty(fs, podLogDir)).filter((e) => e.kind === 'directory' && e.name.startsWith(prefix))
  let best: { dir: string; attempts: Array<{ attempt: number; mtimeMs: number }>; newest: number } | null = null
  for (const podDir of podDirs) {
    const dir = posix.join(podLogDir, podDir.name, req.container)
    const attempts = (await readDirOrEmpty(fs, dir))
      .filter((e) => e.kind === 'file')
      .flatMap((e) => {
        const m = ATTEMPT_LOG_FILE.exec(e.name)
        return m ? [{ attempt: Number(m[1]), mtimeMs: e.mtimeMs }] : []
      })
    if (attempts.length === 0) continue
    const newest = Math.max(...attempts.map((a) => a.mtimeMs))
    if (!best || newest > best.newest) best = { dir, attempts, newest }
  }
  if (!best) return null
  const numbers = best.attempts.map((a) => a.attempt).sort((a, b) => b - a)
  const current = numbers[0] as number
  const attempt = req.previous ? numbers.find((n) => n < current) : current
  if (attempt === undefined) return null
  const path = posix.join(best.dir, `${attempt}.log`)
  const since = req.sinceSeconds === null ? null : BigInt(access.clock().getTime() - req.sinceSeconds * 1000) * 1_000_000n
  const read = await fs.withOpenFile(path, (file) => readLogTail(file, { tailLines: req.tailLines, since, limitBytes: req.limitBytes }))
  if (!read) return null // removed since it was listed (the kubelet's garbage collection)
  return { ...read, source: path, attempt, containerId: null }
}

async function readDirOrEmpty(fs: NodeFileSystem, dir: string): ReturnType<NodeFileSystem['readDir']> {
  try {
    return await fs.readDir(dir)
  } catch (err) {
    if (isNoSuchFile(err)) return []
    throw err
  }
}

/**
 * The file's lines within the bounds, reading back from its end only as far
 * as they need: enough whole lines for tailLines (two more, for a first line
 * that may have begun further back), a line older than since, limitBytes
 * (+ slack) read, or the start of the file.
 */
async function readLogTail(file: OpenedFile, bounds: { tailLines: number | null; since: bigint | null; limitBytes: number }): Promise<LogLines> {
  if (file.kind !== 'file') return { lines: [], truncated: false }
  const budget = bounds.limitBytes + LOG_KEEP_SLACK_BYTES
  let start = file.size
  let window = Buffer.alloc(0)
  let step = LOG_READ_FIRST_BYTES
  for (;;) {
    const from = Math.max(0, start - step)
    window = Buffer.concat([await file.read(from, start - from), window])
    start = from
    if (start === 0) return linesFromCriFile(window, true, bounds)
    const scan = scanCriWindow(window)
    const enoughLines = bounds.tailLines !== null && scan.fullRecords >= bounds.tailLines + 2
    const pastSince = bounds.since !== null && scan.oldest !== null && scan.oldest < bounds.since
    if (enoughLines || pastSince || window.length >= budget) return linesFromCriFile(window, false, bounds)
    step = Math.min(step * 2, budget - window.length)
  }
}

// ---- the kubelet's journal ---------------------------------------------------------

export async function readKubeletJournal(access: DiagnosticsAccess, req: KubeletJournalRequest): Promise<KubeletJournalResult> {
  if (req.sinceSeconds !== null && !isWhole(req.sinceSeconds, 1, MAX_SINCE_SECONDS)) {
    throw new ServiceError('VALIDATION_FAILED', `sinceSeconds must be a whole number from 1 to ${MAX_SINCE_SECONDS}`, ['sinceSeconds'])
  }
  if (req.tailLines !== null && !isWhole(req.tailLines, 0, KUBELET_JOURNAL_MAX_LINES)) {
    throw new ServiceError('VALIDATION_FAILED', `tailLines must be a whole number from 0 to ${KUBELET_JOURNAL_MAX_LINES}`, ['tailLines'])
  }
  const wanted = req.tailLines ?? KUBELET_JOURNAL_MAX_LINES
  // One more than wanted: whether there were more.
  const outcome = await access.journalctl(journalctlArgs(req.sinceSeconds, wanted + 1), JOURNAL_KEEP_BYTES)
  if (!outcome.ran) return { unavailable: outcome.reason }
  // journalctl run by a user outside the journal's groups shows that user's own journal, and says so (journalctl.c, access_check).
  if (/not seeing messages from other users and the system/.test(outcome.stderr.text)) {
    return {
      unavailable: `the node's user may not read the system journal (journalctl: "You are currently not seeing messages from other users and the system"): add it to the systemd-journal group`,
    }
  }
  const failed = commandFailure(outcome, 'journalctl -u kubelet')
  if (failed) return { unavailable: `${failed} (on node ${access.nodeName})` }
  const rows = outcome.stdout.cut ? outcome.stdout.text.slice(outcome.stdout.text.indexOf('\n') + 1) : outcome.stdout.text
  const entries = parseJournalJson(rows)
  const lines = wanted === 0 ? [] : entries.slice(-wanted)
  return { lines, truncated: outcome.stdout.cut || entries.length > wanted }
}

// ---- a file, whole -------------------------------------------------------------------

/** readNodeFile: the file whole, if it is a regular file of at most maxBytes. */
export async function readBoundedFile(fs: NodeFileSystem, nodeName: string, path: string, maxBytes: number): Promise<Buffer | null> {
  const checked = checkedAbsolutePath(path)
  if (!isWhole(maxBytes, 0, Number.MAX_SAFE_INTEGER)) throw new ServiceError('VALIDATION_FAILED', `maxBytes must be a whole number, got ${maxBytes}`, ['maxBytes'])
  return fs.withOpenFile(checked, async (file) => {
    if (file.kind !== 'file') throw new NodeFileRefusedError(checked, 'not-a-file', `node ${nodeName}: ${checked} is not a regular file (${file.kind})`)
    const tooLarge = (size: number): NodeFileRefusedError =>
      new NodeFileRefusedError(checked, 'too-large', `node ${nodeName}: ${checked} is ${size} bytes, more than the ${maxBytes} it may be`)
    if (file.size > maxBytes) throw tooLarge(file.size)
    // One byte more than it had: a file that grew since it was opened is not handed out cut.
    const bytes = await file.read(0, file.size + 1)
    if (bytes.length > file.size) throw new Error(`node ${nodeName}: ${checked} changed while it was read`)
    return bytes
  })
}

/** An absolute path without '..' segments or NUL, normalised (duplicate '/' and '.' segments removed). */
function checkedAbsolutePath(path: string): string {
  const invalid = (why: string): never => {
    throw new ServiceError('VALIDATION_FAILED', `path ${JSON.stringify(typeof path === 'string' ? path.slice(0, 200) : path)} ${why}`, ['path'])
  }
  if (typeof path !== 'string' || path.length === 0) return invalid('must be a non-empty string')
  if (path.includes('\0')) invalid('contains a NUL character')
  if (!path.startsWith('/')) invalid('must be absolute')
  if (path.split('/').includes('..')) invalid('must not contain ".." segments')
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) invalid(`is longer than ${MAX_PATH_BYTES} bytes`)
  const normalised = posix.normalize(path)
  if (normalised === '/') invalid('names the root directory')
  return normalised.endsWith('/') ? normalised.slice(0, -1) : normalised
}
