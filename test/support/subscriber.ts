// A real graphql-ws client (the library GraphiQL and Apollo use) over a real
// WebSocket, collecting what one subscription receives, for the tests of
// Subscription.events and Subscription.rollout.

import { createClient, type Client } from 'graphql-ws'
import WebSocket from 'ws'

export interface Received<T> {
  /** Every `next` payload, in order. */
  values: Array<{ data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>
  /** The error the subscription or the connection ended with, if any. */
  error: unknown
  completed: boolean
  /** Resolves once n values arrived (rejects after timeoutMs, or on an error first). */
  waitFor(n: number, timeoutMs?: number): Promise<void>
  /** Resolves once the subscription ended (error or complete). */
  ended(timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

export interface SubscribeOptions {
  /** connection_init payload (e.g. { Authorization: 'Bearer ...' }). */
  init?: Record<string, unknown>
  /** Headers of the upgrade request. */
  headers?: Record<string, string>
  variables?: Record<string, unknown>
}

export function wsUrl(port: number): string {
  return `ws://127.0.0.1:${port}/graphql`
}

/** Opens a connection and starts one subscription on it. */
export function subscribe<T = Record<string, any>>(port: number, query: string, options: SubscribeOptions = {}): Received<T> {
  const headers = options.headers
  const client: Client = createClient({
    url: wsUrl(port),
    retryAttempts: 0,
    lazy: true,
    connectionParams: options.init,
    webSocketImpl: headers
      ? class extends WebSocket {
          constructor(url: string, protocols?: string | string[]) {
            super(url, protocols, { headers })
          }
        }
      : WebSocket,
  })
  const waiters: Array<() => void> = []
  const notify = () => waiters.splice(0).forEach((w) => w())
  const received: Received<T> = {
    values: [],
    error: undefined,
    completed: false,
    waitFor(n, timeoutMs = 15_000) {
      return until(() => received.values.length >= n, () => `${n} values (got ${received.values.length}: ${JSON.stringify(received.values)}; error ${describe(received.error)})`, timeoutMs)
    },
    ended(timeoutMs = 15_000) {
      return until(() => received.completed || received.error !== undefined, () => 'the subscription to end', timeoutMs, false)
    },
    async close() {
      await client.dispose()
    },
  }
  function until(done: () => boolean, what: () => string, timeoutMs: number, failOnError = true): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) return resolve()
        if (failOnError && received.error !== undefined) return reject(new Error(`the subscription failed waiting for ${what()}`))
        waiters.push(check)
      }
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what()}`)), timeoutMs)
      timer.unref()
      check()
    })
  }
  client.subscribe<T>(
    { query, variables: options.variables },
    {
      next: (value) => {
        received.values.push(value as Received<T>['values'][number])
        notify()
      },
      error: (err) => {
        received.error = err ?? new Error('ended with an error')
        notify()
      },
      complete: () => {
        received.completed = true
        notify()
      },
    },
  )
  return received
}

export function describe(err: unknown): string {
  if (err === undefined) return 'none'
  if (err instanceof Error) return err.message
  if (typeof err === 'object' && err !== null && 'code' in err) return `close ${(err as { code: number; reason?: string }).code} ${(err as { reason?: string }).reason ?? ''}`
  return JSON.stringify(err)
}
