// The node agent for a node reached over SSH: the FileAgent (write path, node
// lock, backups) over SFTP, crictl run as fixed command lines over SSH exec,
// and the kubelet's healthz asked through an SSH port forward on the node's
// own loopback. Nothing built from user input ever reaches a shell: file
// names travel as SFTP path arguments, and the only commands are constants.

import { posix } from 'node:path'
import type { Duplex } from 'node:stream'
import type { Client as SshClient, ClientChannel } from 'ssh2'
import { parse as parseYaml } from 'yaml'
import { errorText } from '../errors.ts'
import type { RuntimeReport } from './agent.ts'
import { channelFailure } from './connect-errors.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES, CRICTL_PODS_ARGS, parseCrictl } from './crictl.ts'
import { FileAgent, type FileAgentHooks } from './file-agent.ts'
import type { LockHolderLiveness } from './node-lock.ts'
import { askKubeletHealthz, HealthzConnectError } from './kubelet-health.ts'
import { SftpFileSystem, type SftpRunner } from './sftp-fs.ts'
import type { SshEndpoint, SshPool } from './ssh-pool.ts'

/** The fixed command lines: the argv constants the local agent runs too, joined. */
const CRICTL_PODS_COMMAND = ['crictl', ...CRICTL_PODS_ARGS].join(' ')
const CRICTL_CONTAINERS_COMMAND = ['crictl', ...CRICTL_CONTAINERS_ARGS].join(' ')
/** A shell's "command not found". */
const EXIT_COMMAND_NOT_FOUND = 127
const CRICTL_NOT_FOUND = 'crictl not found on the node'
const CRICTL_ABSENCE_REMEMBERED_MS = 60_000

/** The settings come from the configuration (src/config.ts), which holds their defaults. */
export interface SshAgentOptions {
  endpoint: SshEndpoint
  pool: SshPool
  staticPodPath: string
  /** On the node, outside staticPodPath: the lock and the backups. */
  stateDir: string
  /** SSH_KUBELET_HEALTHZ_PORT, on the node's 127.0.0.1. */
  kubeletHealthzPort: number
  crictlTimeoutMs: number
  kubeletTimeoutMs: number
  lockTtlMs: number
  lockWaitMs: number
  clock?: () => Date
  isLockHolderAlive?: LockHolderLiveness
  hooks?: FileAgentHooks
}

/**
 * A FileAgent over SFTP. Creating it contacts nothing: the first operation
 * opens (or reuses) the node's pooled connection.
 *
 * The node lock's holder check stays FileAgent's default, and that is right
 * over SSH too: a lock file names the service process that holds it (its
 * host, boot and pid namespace, and pid), not anything on the node, so a
 * holder on this same machine can be asked whether it still runs, and one
 * anywhere else is left to expire.
 */
export function createSshAgent(options: SshAgentOptions): FileAgent {
  const { endpoint, pool } = options
  const clock = options.clock ?? (() => new Date())
  const sftpRun: SftpRunner = (what, fn) => pool.run(endpoint, what, async (session) => fn(await session.sftp()))
  return new FileAgent(new SftpFileSystem(sftpRun), {
    nodeName: endpoint.nodeName,
    staticPodPath: options.staticPodPath,
    stateDir: options.stateDir,
    lockTtlMs: options.lockTtlMs,
    lockWaitMs: options.lockWaitMs,
    clock,
    isLockHolderAlive: options.isLockHolderAlive,
    hooks: options.hooks,
    runtime: rememberingAbsence(
      () =>
        pool.run(endpoint, 'crictl', (session) =>
          crictlStatus(session.client, endpoint.nodeName, options.crictlTimeoutMs, clock),
        ),
      clock,
    ),
    kubelet: () =>
      pool.run(endpoint, 'kubelet healthz', (session) =>
        askKubeletHealthz(
          {
            where: `127.0.0.1:${options.kubeletHealthzPort} on the node`,
            host: `127.0.0.1:${options.kubeletHealthzPort}`,
            path: '/healthz',
            open: () => forwardToNodeLoopback(session.client, options.kubeletHealthzPort),
          },
          { timeoutMs: options.kubeletTimeoutMs, clock, logRaw: (err) => pool.logRawError(endpoint, 'kubelet healthz', err) },
        ),
      ),
  })
}

/**
 * The staticPodPath the node's kubelet reads, from its config file (read over
 * SFTP): null when there is no such file or it names none.
 */
export async function discoverStaticPodPath(pool: SshPool, endpoint: SshEndpoint, kubeletConfigPath: string): Promise<string | null> {
  const fs = new SftpFileSystem((what, fn) => pool.run(endpoint, what, async (session) => fn(await session.sftp())))
  const bytes = await fs.readFile(kubeletConfigPath)
  if (bytes === null) return null
  try {
    const config: unknown = parseYaml(bytes.toString('utf8'))
    const path = typeof config === 'object' && config !== null && 'staticPodPath' in config ? config.staticPodPath : undefined
    if (typeof path !== 'string' || !posix.isAbsolute(path)) return null
    const normalised = posix.normalize(path).replace(/(.)\/+$/, '$1')
    return normalised === '/' ? null : normalised
  } catch {
    return null // a config the kubelet itself could not read either
  }
}

// ---- crictl over SSH exec ----------------------------------------------------

async function crictlStatus(client: SshClient, nodeName: string, timeoutMs: number, clock: () => Date): Promise<RuntimeReport> {
  const [pods, containers] = await Promise.all([
    execFixed(client, CRICTL_PODS_COMMAND, timeoutMs),
    execFixed(client, CRICTL_CONTAINERS_COMMAND, timeoutMs),
  ])
  for (const [run, command] of [
    [pods, CRICTL_PODS_COMMAND],
    [containers, CRICTL_CONTAINERS_COMMAND],
  ] as const) {
    if (run.exitCode === EXIT_COMMAND_NOT_FOUND) return { available: false, reason: CRICTL_NOT_FOUND }
    if (run.exitCode !== 0) {
      const detail = run.stderr.trim().split('\n').slice(-1)[0] || `exit code ${run.exitCode ?? run.signal}`
      return { available: false, reason: `${command} failed on the node: ${detail}` }
    }
  }
  try {
    return { available: true, pods: parseCrictl(pods.stdout, containers.stdout, nodeName, clock()) }
  } catch (err) {
    return { available: false, reason: errorText(err) }
  }
}

/**
 * A node without crictl costs two SSH sessions (a fork and a shell each) per
 * read, for the same answer every time; crictl appearing on a node is rare,
 * and noticing it a minute late is harmless. So its absence is remembered.
 */
function rememberingAbsence(ask: () => Promise<RuntimeReport>, clock: () => Date): () => Promise<RuntimeReport> {
  let absent: { report: RuntimeReport; until: number } | null = null
  return async () => {
    if (absent && clock().getTime() < absent.until) return absent.report
    const report = await ask()
    absent = !report.available && report.reason === CRICTL_NOT_FOUND ? { report, until: clock().getTime() + CRICTL_ABSENCE_REMEMBERED_MS } : null
    return report
  }
}

interface ExecResult {
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
}

/**
 * Runs one of the constant command lines above; the channel is closed after
 * timeoutMs. A command the node would not start is an error in fixed words
 * (ssh2's own is its cause, which the pool logs).
 */
function execFixed(client: SshClient, command: string, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    notConnectedAsError(reject, () => client.exec(command, (err, channel) => {
      if (err) return reject(new Error(`the node did not start ${command} (${channelFailure(err)})`, { cause: err }))
      const stdout: Buffer[] = []
      const stderr: Buffer[] = []
      let size = 0
      let exitCode: number | null = null
      let signal: string | null = null
      const timer = setTimeout(() => {
        channel.close()
        reject(new Error(`${command} did not finish within ${timeoutMs} ms`))
      }, timeoutMs)
      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        size += chunk.length
        if (size > CRICTL_MAX_OUTPUT_BYTES) {
          channel.close()
          return
        }
        into.push(chunk)
      }
      channel.on('data', collect(stdout))
      channel.stderr.on('data', collect(stderr))
      channel.on('exit', (code: number | null, signalName?: string) => {
        exitCode = code
        signal = signalName ?? null
      })
      channel.on('close', () => {
        clearTimeout(timer)
        if (size > CRICTL_MAX_OUTPUT_BYTES) return reject(new Error(`${command} printed more than ${CRICTL_MAX_OUTPUT_BYTES} bytes`))
        resolve({ exitCode, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') })
      })
    }))
  })
}

/** ssh2 throws ("Not connected") when asked for a channel on a connection that is gone: a rejection in fixed words. */
function notConnectedAsError(reject: (err: Error) => void, open: () => unknown): void {
  try {
    open()
  } catch (err) {
    reject(new Error('the SSH connection is closed', { cause: err }))
  }
}

// ---- kubelet healthz through a forward -------------------------------------------

/**
 * A direct-tcpip channel to the node's 127.0.0.1:port (sshd connects there,
 * on the node). A channel the node would not open is a HealthzConnectError in
 * fixed words; a connection that is gone is passed on, for the pool.
 */
function forwardToNodeLoopback(client: SshClient, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    notConnectedAsError(reject, () =>
      client.forwardOut('127.0.0.1', 0, '127.0.0.1', port, (err, channel: ClientChannel) => {
        if (err) return reject(new HealthzConnectError(channelFailure(err), { cause: err }))
        resolve(channel)
      }),
    )
  })
}
