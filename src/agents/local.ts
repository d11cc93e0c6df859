// The node agent for the machine the service runs on: the FileAgent on the
// local filesystem, crictl run directly, and the kubelet's healthz asked over
// loopback.

import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { delimiter, isAbsolute, join } from 'node:path'
import type { KubeletReport, RuntimeReport } from './agent.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_PODS_ARGS, parseCrictl } from './crictl.ts'
import { describeError, FileAgent, type FileAgentHooks, type LockHolderLiveness } from './file-agent.ts'
import { LocalFileSystem } from './local-fs.ts'

export const DEFAULT_KUBELET_HEALTHZ_URL = 'http://127.0.0.1:10248/healthz'
const DEFAULT_KUBELET_TIMEOUT_MS = 2_000
const DEFAULT_CRICTL_TIMEOUT_MS = 10_000
/** crictl's JSON for a busy node is a few MB; anything past this is not crictl. */
const CRICTL_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
/** A misbehaving healthz endpoint must not fill the observation record. */
const KUBELET_MESSAGE_MAX_CHARS = 1_000

export interface LocalAgentOptions {
  nodeName: string
  staticPodPath: string
  stateDir: string
  kubeletHealthzUrl?: string
  /** crictl to run; default: the first `crictl` on PATH. */
  crictlPath?: string
  crictlTimeoutMs?: number
  kubeletTimeoutMs?: number
  /** The PATH searched for crictl; default process.env.PATH. */
  searchPath?: string
  lockTtlMs?: number
  lockWaitMs?: number
  maxFileBytes?: number
  clock?: () => Date
  isLockHolderAlive?: LockHolderLiveness
  hooks?: FileAgentHooks
}

/** A FileAgent on this machine; creates staticPodPath and stateDir if they are missing. */
export async function createLocalAgent(options: LocalAgentOptions): Promise<FileAgent> {
  const fs = new LocalFileSystem()
  const clock = options.clock ?? (() => new Date())
  const healthzUrl = options.kubeletHealthzUrl ?? DEFAULT_KUBELET_HEALTHZ_URL
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
    kubelet: () => askKubeletHealthz(healthzUrl, clock, options.kubeletTimeoutMs),
    runtime: () =>
      localCrictlStatus({
        nodeName: options.nodeName,
        crictlPath: options.crictlPath,
        searchPath: options.searchPath ?? process.env.PATH ?? '',
        timeoutMs: options.crictlTimeoutMs ?? DEFAULT_CRICTL_TIMEOUT_MS,
        clock,
      }),
  })
  await fs.mkdirp(agent.staticPodPath)
  await fs.mkdirp(agent.stateDir)
  return agent
}

/** GET the kubelet's healthz: 200 'ok' is healthy; any other answer is unhealthy, with its body. */
export async function askKubeletHealthz(
  url: string,
  clock: () => Date = () => new Date(),
  timeoutMs = DEFAULT_KUBELET_TIMEOUT_MS,
): Promise<KubeletReport> {
  let response: Response
  let body: string
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' })
    body = (await response.text()).trim()
  } catch (err) {
    return { available: false, reason: `no kubelet answers on ${url} (${fetchFailure(err, timeoutMs)})` }
  }
  const checkedAt = clock().toISOString()
  if (response.status === 200) {
    return { available: true, status: { healthy: true, checkedAt, message: body === 'ok' ? null : truncate(body) } }
  }
  return {
    available: true,
    status: { healthy: false, checkedAt, message: truncate(body) || `HTTP ${response.status}` },
  }
}

function fetchFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `no answer within ${timeoutMs / 1000} s`
  }
  const cause = err instanceof Error ? err.cause : undefined
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined
  if (code === 'ECONNREFUSED') return 'connection refused'
  if (code) return code
  return describeError(cause ?? err)
}

function truncate(text: string): string {
  return text.length > KUBELET_MESSAGE_MAX_CHARS ? `${text.slice(0, KUBELET_MESSAGE_MAX_CHARS)}…` : text
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
    return { available: false, reason: describeError(err) }
  }
  try {
    return { available: true, pods: parseCrictl(podsJson, containersJson, run.nodeName, run.clock()) }
  } catch (err) {
    return { available: false, reason: describeError(err) }
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
