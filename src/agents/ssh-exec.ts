// Fixed command lines over an SSH exec channel, for the SSH agent (crictl,
// journalctl: ssh.ts) and for finding a SUDO node's SFTP server (sudo.ts). A
// command is always built from the constants of those modules and checked
// words (container ids crictl listed, whole numbers: shellCommand), never
// from input: sshd hands it to the user's shell.

import type { Client as SshClient } from 'ssh2'
import { channelFailure } from './connect-errors.ts'
import type { KeptText } from './cri-log.ts'
import { OutputTail } from './output-tail.ts'

export interface ExecResult {
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
}

/** A shell's "command not found". */
export const EXIT_COMMAND_NOT_FOUND = 127

/**
 * Runs command; the channel is closed after timeoutMs, or once stdout and
 * stderr together pass maxOutputBytes (an error either way). A command the
 * node would not start is an error in fixed words (ssh2's own is its cause,
 * which the pool logs).
 */
export function execFixed(client: SshClient, command: string, timeoutMs: number, maxOutputBytes: number): Promise<ExecResult> {
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
        if (size > maxOutputBytes) {
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
        if (size > maxOutputBytes) return reject(new Error(`${command} printed more than ${maxOutputBytes} bytes`))
        resolve({ exitCode, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') })
      })
    }))
  })
}

/** A word that means the same to every shell: no space, quote, glob or other shell character. */
const PLAIN_WORD = /^[A-Za-z0-9._+/=-]+$/

/** argv as a command line for the node's shell; only plain words (anything else is a bug here). */
export function shellCommand(argv: readonly string[]): string {
  for (const word of argv) {
    if (!PLAIN_WORD.test(word)) throw new Error(`unreachable: ${JSON.stringify(word)} is not a plain word for a command line`)
  }
  return argv.join(' ')
}

export interface TailExecResult {
  exitCode: number | null
  signal: string | null
  /** The last keepBytes of each stream, and whether more came before them. */
  stdout: KeptText
  stderr: KeptText
}

/**
 * Runs command like execFixed, for commands whose newest output matters
 * (logs): of each stream, only the last keepBytes are kept, however much it
 * prints. An error after timeoutMs (the channel is closed).
 */
export function execKeepingTail(client: SshClient, command: string, timeoutMs: number, keepBytes: number): Promise<TailExecResult> {
  return new Promise((resolve, reject) => {
    notConnectedAsError(reject, () => client.exec(command, (err, channel) => {
      if (err) return reject(new Error(`the node did not start ${command} (${channelFailure(err)})`, { cause: err }))
      const stdout = new OutputTail(keepBytes)
      const stderr = new OutputTail(keepBytes)
      let exitCode: number | null = null
      let signal: string | null = null
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        channel.close()
      }, timeoutMs)
      channel.on('data', (chunk: Buffer) => stdout.push(chunk))
      channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
      channel.on('exit', (code: number | null, signalName?: string) => {
        exitCode = code
        signal = signalName ?? null
      })
      channel.on('close', () => {
        clearTimeout(timer)
        if (timedOut) return reject(new Error(`${command} did not finish within ${timeoutMs} ms`))
        resolve({ exitCode, signal, stdout: stdout.kept(), stderr: stderr.kept() })
      })
    }))
  })
}

/** ssh2 throws ("Not connected") when asked for a channel on a connection that is gone: a rejection in fixed words. */
export function notConnectedAsError(reject: (err: Error) => void, open: () => unknown): void {
  try {
    open()
  } catch (err) {
    reject(new Error('the SSH connection is closed', { cause: err }))
  }
}
