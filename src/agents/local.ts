// The node agent for the machine the service runs on: the FileAgent on the
// local filesystem, crictl run directly, and the kubelet's healthz asked over
// loopback (src/agents/kubelet-health.ts, over a TCP connection of its own).

import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { connect as connectTcp, isIP } from 'node:net'
import { delimiter, isAbsolute, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { connect as connectTls } from 'node:tls'
import { errorText } from '../errors.ts'
import type { KubeletReport, RuntimeReport } from './agent.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES, CRICTL_PODS_ARGS, parseCrictl } from './crictl.ts'
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
  /** The PATH searched for crictl; default process.env.PATH. */
  searchPath?: string
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
  try {
    return { available: true, pods: parseCrictl(podsJson, containersJson, run.nodeName, run.clock()) }
  } catch (err) {
    return { available: false, reason: errorText(err) }
  }
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
