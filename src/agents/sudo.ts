// Root on a SUDO node: the node's user logs in, and what needs root runs
// through `sudo -n` (never a password prompt): the SFTP server, started on an
// exec channel and driven by the same SFTP client (ssh2's) and the same write
// path (file-agent.ts over sftp-fs.ts) as on a root login; and crictl's fixed
// argument lists (ssh.ts). Nothing from input reaches a command line: the
// SFTP server is one of SFTP_SERVER_PATHS or the node's sftpServer, which
// registration (services/nodes.ts) and this module both hold to a plain path.
//
// ssh2 starts SFTP only as the "sftp" subsystem (client.sftp() in
// node_modules/ssh2/lib/client.js); its unmerged PR 1296 adds a command
// option there. openSftpOverExec below is that function with the PR's one
// change (an "exec" request where ssh2 sends "subsystem"), plus what the PR
// leaves out: sudo's stderr, which ssh2 drops on SFTP channels, is kept for
// the error. So the SFTP session is ssh2's own SFTP object, routed by ssh2's
// own channel table, as on any node. It needs a few of ssh2's internals
// (Ssh2ClientInternals and Ssh2SftpChannel below), checked before use: an ssh2
// without them fails with one sentence saying so, and
// test/agents/sudo-nodes.test.ts runs all of it against a real sshd and sudo.

import type { Client as SshClient, SFTPWrapper } from 'ssh2'
import { ServiceError } from '../errors.ts'
import { channelFailure } from './connect-errors.ts'
import { CRICTL_CONTAINERS_ARGS, CRICTL_INSPECT_PREFIX, CRICTL_LOGS_PREFIX, CRICTL_PODS_ARGS } from './crictl.ts'
import { execFixed, EXIT_COMMAND_NOT_FOUND, notConnectedAsError } from './ssh-exec.ts'
import type { SudoAccess } from './ssh-pool.ts'

/** Every command run as root starts so: -n, never a password prompt (sudo fails instead). */
const SUDO = ['sudo', '-n'] as const

/** Where the distributions put OpenSSH's SFTP server: Debian/Ubuntu, RHEL/Fedora/SUSE, Arch. */
export const SFTP_SERVER_PATHS = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server'] as const

/**
 * Finds the SFTP server as the node's user, without sudo (so nothing is
 * refused and logged for the paths a node does not have), in any login shell
 * (no shell syntax): ls prints the ones that exist.
 */
const FIND_SFTP_SERVER = ['ls', '-d', ...SFTP_SERVER_PATHS].join(' ')
const FIND_TIMEOUT_MS = 10_000
const FIND_MAX_OUTPUT_BYTES = 64 * 1024

/** A word of a command line run through sudo: no space, quote or shell character can be in it. */
const PLAIN_WORD = /^[A-Za-z0-9._+/=-]+$/
/** sudo's own refusals (sudo 1.8 and 1.9: "sudo: a password is required", "Sorry, user x is not allowed to execute ...", "x is not in the sudoers file"). */
const SUDO_REFUSAL = /^sudo: |^Sorry, user |is not in the sudoers file|is not allowed to (execute|run sudo)/m
/** sudo found no such command (its policy allowed it, or it checked the path first). */
const SUDO_NOT_FOUND = /^sudo: .*: command not found$/m
/** How much of sudo's words an error quotes. */
const WORDS_MAX_CHARS = 300
const STDERR_KEPT_BYTES = 4096

/** The command line that runs argv (constants only) as root. */
export function sudoCommand(argv: readonly string[]): string {
  for (const word of argv) {
    if (!PLAIN_WORD.test(word)) throw new Error(`unreachable: ${JSON.stringify(word)} is not a plain word for a command line`)
  }
  return [...SUDO, ...argv].join(' ')
}

/**
 * The sudoers lines that let user run exactly what the service runs as root
 * on a SUDO node, and nothing else (the README's "Nodes without root login"
 * shows them): the SFTP server without arguments ("" in sudoers: none
 * allowed), and crictl with the two argument lists of crictl.ts. crictl is the
 * path sudo finds it at on the node (through its secure_path); alias names
 * the Cmnd_Alias, which must be unique among the node's sudoers files.
 */
export function sudoersRule(user: string, paths: { sftpServer: string; crictl: string }, alias = 'STATICPOD_API'): string {
  for (const word of [user, paths.sftpServer, paths.crictl, alias]) {
    if (!PLAIN_WORD.test(word) || /[,:=\\]/.test(word)) throw new Error(`${JSON.stringify(word)} cannot be written into sudoers as it is`)
  }
  const commands = [`${paths.sftpServer} ""`, [paths.crictl, ...CRICTL_PODS_ARGS].join(' '), [paths.crictl, ...CRICTL_CONTAINERS_ARGS].join(' ')]
  return [
    `Cmnd_Alias ${alias} = ${commands.join(', ')}`,
    // Old sudoers (RHEL 7) require a terminal by default; the service never has one.
    `Defaults:${user} !requiretty`,
    `${user} ALL=(root) NOPASSWD: ${alias}`,
  ].join('\n')
}

/**
 * The sudoers lines that let user run what diagnosis runs as root on a SUDO
 * node, beside sudoersRule's: `crictl inspect` (exit codes and times) and
 * `crictl logs` of containers crictl listed. Their ids and bounds vary, so
 * these lines end in sudoers' `*` (any arguments after the fixed start):
 * every inspect and logs option is a read (inspect's output formats, logs'
 * --tail, --since, --follow, --reopen), and crictl's global options
 * (--runtime-endpoint, --config) are not accepted after the subcommand. Without
 * these lines sudo refuses both: runtime states then lack exit codes, and
 * logs come from the kubelet's files over the SFTP session instead.
 * journalctl needs no rule: it runs as the user (ssh.ts).
 */
export function sudoersDiagnosisRule(user: string, paths: { crictl: string }, alias = 'STATICPOD_API_DIAGNOSIS'): string {
  for (const word of [user, paths.crictl, alias]) {
    if (!PLAIN_WORD.test(word) || /[,:=\\]/.test(word)) throw new Error(`${JSON.stringify(word)} cannot be written into sudoers as it is`)
  }
  const commands = [[paths.crictl, ...CRICTL_INSPECT_PREFIX, '*'].join(' '), [paths.crictl, ...CRICTL_LOGS_PREFIX, '*'].join(' ')]
  return [`Cmnd_Alias ${alias} = ${commands.join(', ')}`, `${user} ALL=(root) NOPASSWD: ${alias}`].join('\n')
}

/** What became of a command run through sudo -n, from its exit code and stderr. */
export type SudoOutcome =
  /** sudo refused, or there is no sudo: its (or the shell's) words, bounded. */
  | { refused: string }
  /** sudo found no such command on the node. */
  | { notFound: string }
  /** sudo ran it (or said nothing that is its own). */
  | null

export function sudoOutcome(exitCode: number | null, stderr: string): SudoOutcome {
  const words = boundedWords(stderr)
  if (exitCode === EXIT_COMMAND_NOT_FOUND) return { refused: `sudo is not installed for the node's user (${words || 'command not found'})` }
  if (exitCode !== 1) return null
  if (SUDO_NOT_FOUND.test(stderr)) return { notFound: words }
  if (SUDO_REFUSAL.test(stderr)) return { refused: words }
  return null
}

/** stderr as one line an error can quote: printable characters, lines joined, cut. */
function boundedWords(text: string): string {
  const oneLine = text
    .replace(/[^\P{C}\n]/gu, '')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join(' / ')
  return oneLine.length > WORDS_MAX_CHARS ? `${oneLine.slice(0, WORDS_MAX_CHARS)}…` : oneLine
}

/**
 * A SUDO node's SFTP session: its SFTP server, found once (or the node's
 * sftpServer), started with sudo -n on an exec channel. One per agent, so
 * per node record: a changed record gets a new one, and finds again.
 */
export class SudoSftp implements SudoAccess {
  readonly key: string
  #found: Promise<string> | null = null

  constructor(
    private readonly nodeName: string,
    /** The node's sftpServer; null: the first of SFTP_SERVER_PATHS the node has. */
    private readonly sftpServer: string | null,
  ) {
    if (sftpServer !== null && (!PLAIN_WORD.test(sftpServer) || !sftpServer.startsWith('/') || sftpServer.split('/').includes('..'))) {
      throw new ServiceError('VALIDATION_FAILED', `node ${nodeName}: sftpServer must be a plain absolute path`, ['sftpServer'])
    }
    this.key = `sudo ${sftpServer ?? ''}`
  }

  async openSftp(client: SshClient): Promise<SFTPWrapper> {
    const path = await this.#serverPath(client)
    const command = sudoCommand([path])
    return openSftpOverExec(client, command, (ended) => {
      const outcome = sudoOutcome(ended.exitCode, ended.stderr)
      if (outcome && 'refused' in outcome) {
        return new ServiceError(
          'PRIVILEGE_DENIED',
          `node ${this.nodeName}: ${command} was refused: ${outcome.refused}. Nothing was read or written; the sudoers rule the service needs is in the README (Nodes without root login)`,
        )
      }
      if (outcome) return new Error(`${command}: the node has no such SFTP server (${outcome.notFound}); set the node's sftpServer`)
      const status = ended.exitCode !== null ? `exit code ${ended.exitCode}` : ended.signal !== null ? `signal ${ended.signal}` : 'no exit status'
      const words = boundedWords(ended.stderr)
      return new Error(`${command} ended before it answered as an SFTP server (${status}${words ? `: ${words}` : ''})`)
    })
  }

  #serverPath(client: SshClient): Promise<string> {
    if (this.sftpServer !== null) return Promise.resolve(this.sftpServer)
    if (!this.#found) {
      const found = findSftpServer(client, this.nodeName)
      this.#found = found
      found.catch(() => {
        if (this.#found === found) this.#found = null // not found, or the look failed: look again next time
      })
    }
    return this.#found
  }
}

async function findSftpServer(client: SshClient, nodeName: string): Promise<string> {
  const listed = await execFixed(client, FIND_SFTP_SERVER, FIND_TIMEOUT_MS, FIND_MAX_OUTPUT_BYTES)
  const present = new Set(listed.stdout.split('\n').map((line) => line.trim()))
  const path = SFTP_SERVER_PATHS.find((p) => present.has(p))
  if (path === undefined) {
    throw new Error(`node ${nodeName} has none of ${SFTP_SERVER_PATHS.join(', ')}: set the node's sftpServer to its SFTP server (updateNode)`)
  }
  return path
}

// ---- ssh2's client.sftp(), with exec for subsystem -----------------------------

/** What ssh2's Client holds that client.sftp() uses (node_modules/ssh2/lib/client.js: sftp(), openChannel()). */
interface Ssh2ClientInternals {
  _sock?: { writable?: boolean }
  _chanMgr: { add(channel: unknown): number }
  _protocol: {
    session(localChannel: number, initialWindow: number, maxPacket: number): void
    exec(remoteChannel: number, command: string, wantReply: boolean): void
  }
}

/** What ssh2's SFTP object (node_modules/ssh2/lib/protocol/SFTP.js) has as a channel that client.sftp() uses. */
interface Ssh2SftpChannel {
  outgoing: { id: number; state: string }
  /** Answers to channel requests, in order: true when the request failed. */
  _callbacks: Array<(failed: boolean) => void>
  /** ssh2 pushes stderr data here, and emits 'close' on it when the channel closes (lib/utils.js onCHANNEL_CLOSE). */
  stderr: { readable: boolean; push(data: Buffer | null): boolean; emit(event: string): boolean; on(): unknown; once(): unknown }
  subtype: string | undefined
  /** Sends SFTP's INIT; 'ready' follows the server's VERSION. */
  _init(): void
}

interface Ended {
  exitCode: number | null
  signal: string | null
  stderr: string
}

function clientInternals(client: SshClient): Ssh2ClientInternals {
  const c = client as unknown as Partial<Ssh2ClientInternals>
  if (typeof c._chanMgr?.add !== 'function' || typeof c._protocol?.session !== 'function' || typeof c._protocol.exec !== 'function') {
    throw new Error(INTERNALS_MISSING)
  }
  return c as Ssh2ClientInternals
}

const INTERNALS_MISSING =
  'this ssh2 lacks the internals src/agents/sudo.ts uses to start an SFTP server through sudo (install the ssh2 version package-lock.json names)'

/**
 * client.sftp() with an exec request for the subsystem request: the channel
 * ssh2 opens as "sftp" is its SFTP object; command runs on it, and once the
 * server at its other end answers SFTP's INIT, that object is the session.
 * When it ends before that, ended() says why, from its exit and stderr.
 */
async function openSftpOverExec(client: SshClient, command: string, ended: (how: Ended) => Error): Promise<SFTPWrapper> {
  const { MAX_WINDOW, PACKET_SIZE } = (await import('ssh2/lib/Channel.js')).default
  const internals = clientInternals(client)
  return new Promise((resolve, reject) => {
    const opened = Object.assign(
      (err: Error | undefined, channel?: unknown) => {
        if (err) return reject(new Error(`the node did not open a session for its SFTP server (${channelFailure(err)})`, { cause: err }))
        const sftp = channel as SFTPWrapper & Ssh2SftpChannel
        if (!Array.isArray(sftp._callbacks) || typeof sftp._init !== 'function' || typeof sftp.outgoing?.id !== 'number') {
          sftp.end()
          return reject(new Error(INTERNALS_MISSING))
        }
        const stderr = boundedSink(STDERR_KEPT_BYTES)
        sftp.stderr = stderr
        let exitCode: number | null = null
        let signal: string | null = null
        const onExit = (code?: number | null, signalName?: string): void => {
          exitCode = typeof code === 'number' ? code : null
          signal = signalName ?? null
        }
        const onReady = (): void => {
          detach()
          resolve(sftp)
        }
        const onError = (cause: unknown): void => {
          detach()
          sftp.end()
          reject(new Error(`${command} did not answer as an SFTP server (something on the node printed to its output first: a login script?)`, { cause }))
        }
        const onClose = (): void => {
          detach()
          reject(ended({ exitCode, signal, stderr: stderr.text() }))
        }
        const detach = (): void => {
          sftp.off('ready', onReady)
          sftp.off('error', onError)
          sftp.off('exit', onExit)
          sftp.off('close', onClose)
        }
        sftp._callbacks.push((failed) => {
          if (failed) {
            sftp.end()
            return reject(new Error(`the node refused to run ${command} (its sshd refused the exec request)`))
          }
          sftp.subtype = 'exec'
          sftp.on('ready', onReady).on('error', onError).on('exit', onExit).on('close', onClose)
          sftp._init()
        })
        internals._protocol.exec(sftp.outgoing.id, command, true)
      },
      // ssh2 makes its SFTP object, not a plain Channel, for a channel opened under this type.
      { type: 'sftp' },
    )
    notConnectedAsError(reject, () => {
      if (internals._sock?.writable !== true) throw new Error('Not connected')
      const localChannel = internals._chanMgr.add(opened)
      if (localChannel === -1) return reject(new Error('the SSH connection has no free channel for an SFTP session'))
      internals._protocol.session(localChannel, MAX_WINDOW, PACKET_SIZE)
    })
  })
}

/** Where ssh2 pushes the channel's stderr: the first bytes kept, the rest dropped, never a stall. */
function boundedSink(maxBytes: number): Ssh2SftpChannel['stderr'] & { text(): string } {
  const kept: Buffer[] = []
  let size = 0
  return {
    readable: false,
    push(data) {
      if (data && size < maxBytes) {
        const part = data.subarray(0, maxBytes - size)
        kept.push(Buffer.from(part))
        size += part.length
      }
      return true
    },
    emit: () => false,
    on: () => undefined,
    once: () => undefined,
    text: () => Buffer.concat(kept).toString('utf8'),
  }
}
