// The kubelet's own health endpoint, asked the same way on every node: one
// GET /healthz over a byte stream that the agent opens (a TCP connection on
// this machine, an SSH direct-tcpip channel to the node's loopback), a
// bounded body, and one reading of the answer. Why no answer came is said in
// fixed words; the raw error goes to the agent's log, if it has one.

import { request } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { KubeletReport } from './agent.ts'

/** Longest message kept from a healthz body: a misbehaving endpoint must not fill the observation record. */
const KUBELET_MESSAGE_MAX_CHARS = 1_000
/** Bytes read of a body at most (UTF-8 takes up to 4 per character); the rest is not waited for. */
const KUBELET_BODY_MAX_BYTES = KUBELET_MESSAGE_MAX_CHARS * 4

/** The connection could not be opened; the message says why in fixed words, the cause is the raw error. */
export class HealthzConnectError extends Error {
  override readonly name = 'HealthzConnectError'
}

export interface KubeletHealthzTarget {
  /** Where the kubelet is asked, as messages name it: its URL, or `127.0.0.1:<port> on the node`. */
  where: string
  /** The Host header: host and port. */
  host: string
  /** The request path: /healthz. */
  path: string
  /**
   * Opens the stream to the kubelet. Rejects with a HealthzConnectError when
   * nothing answers there (the report says so); any other rejection means the
   * agent's own connection is gone and is passed on. The signal aborts once
   * the answer is no longer waited for.
   */
  open(signal: AbortSignal): Promise<Duplex>
}

export interface KubeletHealthzOptions {
  timeoutMs: number
  clock: () => Date
  /** Told the raw error behind a "no kubelet answers". */
  logRaw?: (err: unknown) => void
}

/** GET /healthz: 200 is healthy ('ok' needs no message); any other answer is unhealthy, with its body. */
export function askKubeletHealthz(target: KubeletHealthzTarget, options: KubeletHealthzOptions): Promise<KubeletReport> {
  const { timeoutMs, clock, logRaw } = options
  return new Promise((resolve, reject) => {
    const abort = new AbortController()
    let stream: Duplex | null = null
    let settled = false
    const finish = (settle: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      abort.abort()
      stream?.destroy()
      settle()
    }
    const noAnswer = (why: string) => finish(() => resolve({ available: false, reason: `no kubelet answers on ${target.where} (${why})` }))
    const timer = setTimeout(() => noAnswer(`no answer within ${timeoutMs / 1000} s`), timeoutMs)

    target.open(abort.signal).then(
      (opened) => {
        stream = opened
        if (settled) return void opened.destroy()
        // No agent: with one (agent: false makes one), Node ignores createConnection and dials host:port itself.
        const req = request(
          { createConnection: () => opened as Socket, path: target.path, method: 'GET', headers: { host: target.host } },
          (res) => {
            const chunks: Buffer[] = []
            let size = 0
            const answer = () => {
              const body = truncate(Buffer.concat(chunks).toString('utf8').trim())
              const checkedAt = clock().toISOString()
              finish(() =>
                resolve(
                  res.statusCode === 200
                    ? { available: true, status: { healthy: true, checkedAt, message: body === 'ok' ? null : body } }
                    : { available: true, status: { healthy: false, checkedAt, message: body || `HTTP ${res.statusCode}` } },
                ),
              )
            }
            res.on('data', (chunk: Buffer) => {
              chunks.push(chunk)
              size += chunk.length
              // Enough for the message: the rest of an endless body is not read.
              if (size >= KUBELET_BODY_MAX_BYTES) answer()
            })
            res.on('end', answer)
            res.on('error', (err) => {
              logRaw?.(err)
              noAnswer('the connection closed before the answer ended')
            })
          },
        )
        req.on('error', (err: Error & { code?: unknown }) => {
          logRaw?.(err)
          noAnswer(typeof err.code === 'string' && err.code.startsWith('HPE_') ? 'the answer is not HTTP' : 'the connection closed without an answer')
        })
        req.end()
      },
      (err: unknown) => {
        if (!(err instanceof HealthzConnectError)) return finish(() => reject(err))
        logRaw?.(err.cause ?? err)
        noAnswer(err.message)
      },
    )
  })
}

function truncate(text: string): string {
  return text.length > KUBELET_MESSAGE_MAX_CHARS ? `${text.slice(0, KUBELET_MESSAGE_MAX_CHARS)}…` : text
}
