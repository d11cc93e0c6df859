// The node agent for the machine the service runs on: the FileAgent on the
// local filesystem, crictl run directly, and the kubelet's healthz asked over
// loopback (src/agents/kubelet-health.ts, over a TCP connection of its own).
// Diagnosis (diagnostics.ts): crictl logs and journalctl as child processes
// with fixed argument lists (no shell), the kubelet's log files read here.

import { execFile, spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { connect as connectTcp, isIP } from 'node:net'
import { delimiter, isAbsolute, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { connect as connectTls } from 'node:tls'
import { errorText } from '../errors.ts'
import type { KubeletReport, RuntimeReport } from './agent.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES, CRICTL_PODS_ARGS, crictlInspectArgs, readCrictl } from './crictl.ts'
import type { CommandOutcome, RunCommand } from './diagnostics.ts'
import { OutputTail } from './output-tail.ts'
import { FileAgent, type FileAgentHooks } from './file-agent.ts'
import type { LockHolderLiveness } from './node-lock.ts'
import { askKubeletHealthz, HealthzConnectError } from './kubelet-health.ts'
import { LocalFileSystem } from './local-fs.ts'

/** The settings come from the configuration (src/config.ts), which holds their defaults. */
export interface LocalAgentOptions {
  nodeName: string
  staticPodPath: string
  stateDir: string
  /** LOCAL_KUBELET_HEALTHZ_URL: an http:// (or https://) URL. */
  kubeletHealthzUrl: string
  /** crictl to run; default: the first `crictl` on PATH. */
  crictlPath?: string
  crictlTimeoutMs: number
  kubeletTimeoutMs: number
  /** The PATH searched for crictl and journalctl; default process.env.PATH. */
  searchPath?: string
  /** journalctl to run; default: the first `journalctl` on PATH. */
  journalctlPath?: string
  /** KUBELET_POD_LOGS_DIR: the kubelet's log files, read where crictl cannot give a log; default /var/log/pods. */
  podLogDir?: string
  lockTtlMs: number
  lockWaitMs: number
  maxFileBytes?: number
  clock?: () => Date
  isLockHolderAlive?: LockHolderLiveness
  hooks?: FileAgentHooks
}

/** A FileAgent on this machine; creates staticPodPath and stateDir if they are missing. */
export async function createLocalAgent(options: LocalAgentOptions): Promise<FileAgent> {
  const fs = new LocalFileSystem()
  const clock = options.clock ?? (() => new Date())
  const agent = new FileAgent(fs, {
    nodeName: options.nodeName,
    staticPodPath: options.staticPodPath,
    stateDir: options.stateDir,
    lockTtlMs: options.lockTtlMs,
    lockWaitMs: options.lockWaitMs,
    maxFileBytes: options.maxFileBytes,
    clock,
    isLockHolderAlive: options.isLockHolderAlive,
    hooks: options.hooks,
    podLogDir: options.podLogDir,
    commands: {
      crictl: localCommand('crictl', options.crictlPath, options.searchPath ?? process.env.PATH ?? '', options.crictlTimeoutMs),
      journalctl: localCommand('journalctl', options.journalctlPath, options.searchPath ?? process.env.PATH ?? '', options.crictlTimeoutMs),
    },
    kubelet: () => kubeletHealthAt(options.kubeletHealthzUrl, options.kubeletTimeoutMs, clock),
    runtime: () =>
      localCrictlStatus({
        nodeName: options.nodeName,
        crictlPath: options.crictlPath,
        searchPath: options.searchPath ?? process.env.PATH ?? '',
        timeoutMs: options.crictlTimeoutMs,
        clock,
      }),
  })
  await fs.mkdirp(agent.staticPodPath)
  await fs.mkdirp(agent.stateDir)
  return agent
}

/** The kubelet's healthz at a URL on this machine. */
export function kubeletHealthAt(url: string, timeoutMs: number, clock: () => Date = () => new Date()): Promise<KubeletReport> {
  const parsed = new URL(url)
  return askKubeletHealthz(
    { where: url, host: parsed.host, path: `${parsed.pathname}${parsed.search}`, open: (signal) => connectTo(parsed, signal) },
    { timeoutMs, clock },
  )
}

/** A connection to the URL's host and port, once it is established (https: once its handshake verified the server). */
function connectTo(url: URL, signal: AbortSignal): Promise<Duplex> {
  const tls = url.protocol === 'https:'
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = Number(url.port) || (tls ? 443 : 80)
  return new Promise((resolve, reject) => {
    const socket = tls ? connectTls({ host, port, servername: isIP(host) ? undefined : host }) : connectTcp({ host, port })
    const stop = () => socket.destroy()
    const failed = (err: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', stop)
      reject(new HealthzConnectError(err.code === 'ECONNREFUSED' ? 'connection refused' : (err.code ?? errorText(err)), { cause: err }))
    }
    signal.addEventListener('abort', stop, { once: true })
    socket.once('error', failed)
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      signal.removeEventListener('abort', stop)
      // From here the request's own error handling takes over (it is attached before any I/O event).
      socket.off('error', failed)
      resolve(socket)
    })
  })
}

interface CrictlRun {
  nodeName: string
  crictlPath: string | undefined
  searchPath: string
  timeoutMs: number
  clock: () => Date
}

async function localCrictlStatus(run: CrictlRun): Promise<RuntimeReport> {
  const crictl = run.crictlPath ?? (await findOnPath('crictl', run.searchPath))
  if (crictl === null) return { available: false, reason: 'crictl not found on this machine' }
  if (!(await isExecutable(crictl))) return { available: false, reason: `crictl not found at ${crictl}` }
  let podsJson: string
  let containersJson: string
  try {
    ;[podsJson, containersJson] = await Promise.all([
      runCrictl(crictl, CRICTL_PODS_ARGS, run.timeoutMs),
      runCrictl(crictl, CRICTL_CONTAINERS_ARGS, run.timeoutMs),
    ])
  } catch (err) {
    return { available: false, reason: errorText(err) }
  }
  let reading: ReturnType<typeof readCrictl>
  try {
    reading = readCrictl(podsJson, containersJson, run.nodeName, run.clock())
  } catch (err) {
    return { available: false, reason: errorText(err) }
  }
  if (reading.inspectIds.length === 0) return { available: true, pods: reading.pods }
  // Exit codes and times, for the containers that are not running or restarted (crictl.ts); the state as listed without them.
  try {
    return { available: true, pods: reading.withInspect(await runCrictl(crictl, crictlInspectArgs(reading.inspectIds), run.timeoutMs)) }
  } catch {
    return { available: true, pods: reading.pods }
  }
}

/** A command found on this machine (its path, else the first on PATH), run with argv and no shell, keeping the end of its output. */
function localCommand(name: string, path: string | undefined, searchPath: string, timeoutMs: number): RunCommand {
  return async (args, keepBytes) => {
    const file = path ?? (await findOnPath(name, searchPath))
    if (file === null || !(await isExecutable(file))) return { ran: false, missing: true, reason: `${name} not found on this machine` }
    return spawnKeepingTail(file, `${name} ${args[0] ?? ''}`.trim(), args, timeoutMs, keepBytes)
  }
}

function spawnKeepingTail(file: string, what: string, args: readonly string[], timeoutMs: number, keepBytes: number): Promise<CommandOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const stdout = new OutputTail(keepBytes)
    const stderr = new OutputTail(keepBytes)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(new Error(`${what} could not be started: ${errorText(err)}`))
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (timedOut) return reject(new Error(`${what} did not finish within ${timeoutMs} ms`))
      resolve({ ran: true, exitCode: code, signal, stdout: stdout.kept(), stderr: stderr.kept() })
    })
  })
}

function runCrictl(crictl: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const command = `crictl ${args.join(' ')}`
  return new Promise((resolve, reject) => {
    execFile(
      crictl,
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: CRICTL_MAX_OUTPUT_BYTES, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout)
        if (err.killed) return reject(new Error(`${command} did not finish within ${timeoutMs} ms`))
        const detail = stderr.trim().split('\n').slice(-1)[0] || err.message
        reject(new Error(`${command} failed: ${detail}`))
      },
    )
  })
}

async function findOnPath(command: string, searchPath: string): Promise<string | null> {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue // a relative PATH entry would depend on our cwd
    const candidate = join(dir, command)
    if (await isExecutable(candidate)) return candidate
  }
  return null
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}
