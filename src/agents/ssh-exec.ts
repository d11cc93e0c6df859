// Fixed command lines over an SSH exec channel, for the SSH agent (crictl,
// ssh.ts) and for finding a SUDO node's SFTP server (sudo.ts). A command is
// always one of the constants of those modules, never built from input: sshd
// hands it to the user's shell.

import type { Client as SshClient } from 'ssh2'
import { channelFailure } from './connect-errors.ts'

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

/** ssh2 throws ("Not connected") when asked for a channel on a connection that is gone: a rejection in fixed words. */
export function notConnectedAsError(reject: (err: Error) => void, open: () => unknown): void {
  try {
    open()
  } catch (err) {
    reject(new Error('the SSH connection is closed', { cause: err }))
  }
}
