// The node agent for a node reached over SSH: the FileAgent (write path, node
// lock, backups) over SFTP, crictl run as fixed command lines over SSH exec,
// and the kubelet's healthz asked through an SSH port forward on the node's
// own loopback. Nothing built from user input ever reaches a shell: file
// names travel as SFTP path arguments, and every command is constants plus
// words checked to be plain (container ids crictl listed, whole numbers).
// On a SUDO node (endpoint.sudo) the SFTP server and crictl run through
// sudo -n (sudo.ts); everything else is the same. journalctl runs as the
// node's user even there: reading the system journal needs membership of the
// systemd-journal (or adm, wheel) group, not root, and a sudoers rule cannot
// allow its variable --since and --lines without allowing every other
// journalctl option too (--vacuum-time=, --rotate ...).
//
// Diagnosis (diagnostics.ts): crictl inspect, crictl logs and journalctl with
// argument lists built from constants, container ids crictl itself listed and
// whole numbers, each word checked plain (shellCommand, sudoCommand); the
// kubelet's log files over the same SFTP session as everything else.

import { posix } from 'node:path'
import type { Duplex } from 'node:stream'
import type { Client as SshClient, ClientChannel } from 'ssh2'
import { parse as parseYaml } from 'yaml'
import type { Privilege } from '../domain.ts'
import { errorText } from '../errors.ts'
import type { RuntimeReport } from './agent.ts'
import { channelFailure } from './connect-errors.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_MAX_OUTPUT_BYTES, CRICTL_PODS_ARGS, crictlInspectArgs, readCrictl } from './crictl.ts'
import type { RunCommand } from './diagnostics.ts'
import { FileAgent, type FileAgentHooks } from './file-agent.ts'
import type { LockHolderLiveness } from './node-lock.ts'
import { askKubeletHealthz, HealthzConnectError } from './kubelet-health.ts'
import { SftpFileSystem, type SftpRunner } from './sftp-fs.ts'
import { execFixed, execKeepingTail, EXIT_COMMAND_NOT_FOUND, notConnectedAsError, shellCommand } from './ssh-exec.ts'
import type { SshEndpoint, SshPool, SudoAccess } from './ssh-pool.ts'
import { sudoCommand, sudoOutcome, SudoSftp } from './sudo.ts'

/** The fixed command lines: the argv constants the local agent runs too, joined; through sudo -n on a SUDO node. */
const CRICTL_COMMANDS = {
  root: { pods: shellCommand(['crictl', ...CRICTL_PODS_ARGS]), containers: shellCommand(['crictl', ...CRICTL_CONTAINERS_ARGS]) },
  sudo: { pods: sudoCommand(['crictl', ...CRICTL_PODS_ARGS]), containers: sudoCommand(['crictl', ...CRICTL_CONTAINERS_ARGS]) },
} as const
const CRICTL_NOT_FOUND = 'crictl not found on the node'
const CRICTL_ABSENCE_REMEMBERED_MS = 60_000
const SUDO_REFUSAL_REMEMBERED_MS = 10 * 60_000

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
  /** KUBELET_POD_LOGS_DIR: the kubelet's log files on the node, read where crictl cannot give a log; default /var/log/pods. */
  podLogDir?: string
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
  const inspectRefused = { until: 0 }
  return new FileAgent(new SftpFileSystem(sftpRun), {
    nodeName: endpoint.nodeName,
    staticPodPath: options.staticPodPath,
    stateDir: options.stateDir,
    lockTtlMs: options.lockTtlMs,
    lockWaitMs: options.lockWaitMs,
    clock,
    isLockHolderAlive: options.isLockHolderAlive,
    hooks: options.hooks,
    podLogDir: options.podLogDir,
    commands: {
      crictl: nodeCommand(pool, endpoint, 'crictl', endpoint.sudo !== undefined, options.crictlTimeoutMs),
      journalctl: nodeCommand(pool, endpoint, 'journalctl', false, options.crictlTimeoutMs),
    },
    runtime: rememberingAbsence(
      () =>
        pool.run(endpoint, 'crictl', (session) =>
          crictlStatus(session.client, endpoint.nodeName, endpoint.sudo !== undefined, options.crictlTimeoutMs, clock, inspectRefused),
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
 * How root is had on a node, for its endpoint: nothing to add for a root
 * login; for SUDO, the SFTP server started through sudo -n (sudo.ts).
 */
export function sudoAccessFor(nodeName: string, privilege: Privilege, sftpServer: string | null): { sudo?: SudoAccess } {
  return privilege === 'SUDO' ? { sudo: new SudoSftp(nodeName, sftpServer) } : {}
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

async function crictlStatus(
  client: SshClient,
  nodeName: string,
  sudo: boolean,
  timeoutMs: number,
  clock: () => Date,
  inspectRefused: { until: number },
): Promise<RuntimeReport> {
  const commands = sudo ? CRICTL_COMMANDS.sudo : CRICTL_COMMANDS.root
  const [pods, containers] = await Promise.all([
    execFixed(client, commands.pods, timeoutMs, CRICTL_MAX_OUTPUT_BYTES),
    execFixed(client, commands.containers, timeoutMs, CRICTL_MAX_OUTPUT_BYTES),
  ])
  for (const [run, command] of [
    [pods, commands.pods],
    [containers, commands.containers],
  ] as const) {
    if (sudo) {
      // sudo's own failures first: a shell's 127 is no sudo at all, and sudo says "command not found" itself.
      const outcome = sudoOutcome(run.exitCode, run.stderr)
      if (outcome && 'notFound' in outcome) return { available: false, reason: CRICTL_NOT_FOUND }
      if (outcome) return { available: false, reason: `${command} could not run as root on the node: ${outcome.refused}` }
    }
    if (run.exitCode === EXIT_COMMAND_NOT_FOUND) return { available: false, reason: CRICTL_NOT_FOUND }
    if (run.exitCode !== 0) {
      const detail = run.stderr.trim().split('\n').slice(-1)[0] || `exit code ${run.exitCode ?? run.signal}`
      return { available: false, reason: `${command} failed on the node: ${detail}` }
    }
  }
  let reading: ReturnType<typeof readCrictl>
  try {
    reading = readCrictl(pods.stdout, containers.stdout, nodeName, clock())
  } catch (err) {
    return { available: false, reason: errorText(err) }
  }
  if (reading.inspectIds.length === 0 || clock().getTime() < inspectRefused.until) return { available: true, pods: reading.pods }
  // Exit codes and times, for the containers that are not running or restarted (crictl.ts). Without them
  // (the inspect failed, a sudoers rule without it, a container removed in between), the state as listed.
  const argv = ['crictl', ...crictlInspectArgs(reading.inspectIds)]
  const inspected = await execFixed(client, sudo ? sudoCommand(argv) : shellCommand(argv), timeoutMs, CRICTL_MAX_OUTPUT_BYTES).catch(() => null)
  if (inspected && sudo && sudoOutcome(inspected.exitCode, inspected.stderr) !== null) {
    // sudo logs every refusal on the node: a sudoers rule without the diagnosis lines is not asked again for a while.
    inspectRefused.until = clock().getTime() + SUDO_REFUSAL_REMEMBERED_MS
  }
  if (!inspected || inspected.exitCode !== 0) return { available: true, pods: reading.pods }
  try {
    return { available: true, pods: reading.withInspect(inspected.stdout) }
  } catch {
    return { available: true, pods: reading.pods }
  }
}

/**
 * crictl or journalctl on the node, each run one pooled operation, keeping
 * the end of its output; through sudo -n when asked (crictl on a SUDO node).
 */
function nodeCommand(pool: SshPool, endpoint: SshEndpoint, name: 'crictl' | 'journalctl', throughSudo: boolean, timeoutMs: number): RunCommand {
  return (args, keepBytes) =>
    pool.run(endpoint, `${name} ${args[0] ?? ''}`.trim(), async (session) => {
      const argv = [name, ...args]
      const command = throughSudo ? sudoCommand(argv) : shellCommand(argv)
      const run = await execKeepingTail(session.client, command, timeoutMs, keepBytes)
      const notFound = { ran: false as const, missing: true, reason: `${name} not found on the node` }
      if (throughSudo) {
        const outcome = sudoOutcome(run.exitCode, run.stderr.text)
        if (outcome && 'notFound' in outcome) return notFound
        if (outcome) return { ran: false as const, missing: false, reason: `sudo -n ${name} ${args[0] ?? ''} could not run as root on the node: ${outcome.refused}` }
      }
      if (run.exitCode === EXIT_COMMAND_NOT_FOUND) return notFound
      return { ran: true as const, ...run }
    })
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
