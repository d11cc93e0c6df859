// The service's GraphQL API, and nothing else: queries and mutations as HTTP
// POSTs to <server>/graphql (fetch), subscriptions over a WebSocket on the
// same path (graphql-ws, the token in the connection_init payload). Errors
// become CliErrors with the service's code; errors beside data (a node that
// could not be read) are kept as warnings for the command to report.

import { readFileSync } from 'node:fs'
import { CliError } from './errors.ts'
import type { Connection } from './config.ts'

export interface GraphQLErrorOut {
  message: string
  path?: Array<string | number>
  extensions?: { code?: string; node?: string; [key: string]: unknown }
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
const USER_AGENT = `staticpodctl/${VERSION}`
export { VERSION }

/**
 * Codes of errors beside data that say nothing the data does not: the API
 * server's absence is in every pod's sync (API_SERVER_UNAVAILABLE).
 */
const QUIET_CODES = new Set(['API_SERVER_UNAVAILABLE'])

export class Api {
  /** Errors that came beside data, in order, each once. */
  readonly warnings: GraphQLErrorOut[] = []

  constructor(
    readonly connection: Connection,
    private readonly requestTimeoutMs: number | null = null,
  ) {}

  private headers(): Record<string, string> {
    return {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      'user-agent': USER_AGENT,
      ...(this.connection.token ? { authorization: `Bearer ${this.connection.token}` } : {}),
    }
  }

  /**
   * Runs a query or mutation. Throws the error of a field that came back null
   * with an error (e.g. NOT_FOUND for an unknown node), or of a response
   * without data; keeps other errors (beside data) as warnings.
   */
  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const url = `${this.connection.server}/graphql`
    let res: Response
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: this.headers(),
        body: JSON.stringify({ query, variables }),
        ...(this.requestTimeoutMs ? { signal: AbortSignal.timeout(this.requestTimeoutMs) } : {}),
      })
    } catch (err) {
      throw connectionError(this.connection, err)
    }
    const text = await res.text()
    let body: { data?: Record<string, unknown> | null; errors?: GraphQLErrorOut[] }
    try {
      body = JSON.parse(text) as typeof body
    } catch {
      throw new CliError(res.status === 401 ? 'UNAUTHENTICATED' : res.status === 403 ? 'FORBIDDEN' : `HTTP_${res.status}`, `${url} answered ${res.status} ${res.statusText}, not GraphQL: ${text.slice(0, 200)}`)
    }
    const errors = body.errors ?? []
    const data = body.data
    if (!data) {
      const first = errors[0]
      throw first ? fromGraphQLError(first) : new CliError(`HTTP_${res.status}`, `${url} answered ${res.status} without data`)
    }
    // A field outside any list that came back null with its error is what was asked for, and failed.
    for (const error of errors) {
      if (error.path && error.path.length > 0 && error.path.every((p) => typeof p === 'string') && valueAt(data, error.path as string[]) === null) throw fromGraphQLError(error)
    }
    for (const error of errors) {
      if (QUIET_CODES.has(error.extensions?.code ?? '')) continue
      if (!this.warnings.some((w) => w.message === error.message)) this.warnings.push(error)
    }
    return data as T
  }

  /**
   * Runs a subscription until it completes (resolves), fails (rejects with a
   * CliError), or signal aborts (resolves). onNext gets each value's data.
   */
  async subscribe<T>(query: string, variables: Record<string, unknown>, onNext: (data: T) => void, signal?: AbortSignal): Promise<void> {
    const wsUrl = `${this.connection.server.replace(/^http/, 'ws')}/graphql`
    const { createClient } = await import('graphql-ws')
    const webSocketImpl = await webSocketClass()
    if (!webSocketImpl) throw new CliError('WEBSOCKET_UNAVAILABLE', 'no WebSocket client here (the ws package is not installed, and this Node has no WebSocket)')
    const token = this.connection.token
    let connected = false
    const client = createClient({
      url: wsUrl,
      lazy: true,
      retryAttempts: 0,
      on: { connected: () => void (connected = true) },
      connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
      webSocketImpl,
    })
    try {
      await new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return resolve()
        const onAbort = () => {
          unsubscribe()
          resolve()
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        const unsubscribe = client.subscribe<T>(
          { query, variables },
          {
            next: (value) => {
              const first = value.errors?.[0] as GraphQLErrorOut | undefined
              if (first) {
                unsubscribe()
                reject(fromGraphQLError(first))
                return
              }
              if (value.data) onNext(value.data)
            },
            error: (err: unknown) => {
              signal?.removeEventListener('abort', onAbort)
              reject(subscriptionError(this.connection, wsUrl, err, connected))
            },
            complete: () => {
              signal?.removeEventListener('abort', onAbort)
              resolve()
            },
          },
        )
      })
    } finally {
      await client.dispose()
    }
  }
}

/**
 * The ws package (loaded only by the commands that stream: every other run
 * starts faster without it), with this client's User-Agent; else the
 * WebSocket of Node 22 and later; else none.
 */
async function webSocketClass(): Promise<unknown> {
  try {
    const { default: WebSocket } = await import('ws')
    return class extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { 'user-agent': USER_AGENT } })
      }
    }
  } catch {
    return (globalThis as { WebSocket?: unknown }).WebSocket
  }
}

function valueAt(data: Record<string, unknown>, path: string[]): unknown {
  let v: unknown = data
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string, unknown>)[key]
  }
  return v
}

function fromGraphQLError(error: GraphQLErrorOut): CliError {
  const field = Array.isArray(error.extensions?.field) ? ` (field ${(error.extensions.field as string[]).join('.')})` : ''
  return new CliError(error.extensions?.code ?? 'GRAPHQL_ERROR', `${error.message}${field}`)
}

function connectionError(connection: Connection, err: unknown): CliError {
  const e = err as Error & { cause?: { code?: string; message?: string } }
  if (e.name === 'TimeoutError') return new CliError('TIMEOUT', `${connection.server} did not answer within --request-timeout`)
  const cause = e.cause?.code ?? e.cause?.message ?? e.message
  return new CliError('SERVER_UNREACHABLE', `cannot reach staticpod-api at ${connection.server} (${connection.serverFrom}): ${cause}`)
}

/**
 * SUBSCRIPTION_CLOSED: a connection that was open went away (subscribe again).
 * WEBSOCKET_UNAVAILABLE: none could be opened (a proxy that refuses upgrades,
 * the service down): the commands that stream poll instead.
 */
function subscriptionError(connection: Connection, url: string, err: unknown, connected: boolean): CliError {
  if (Array.isArray(err) && err.length > 0) return fromGraphQLError(err[0] as GraphQLErrorOut)
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    const { code, reason } = err as { code: number; reason?: string }
    // graphql-ws: 4401 Unauthorized, 4403 Forbidden (mercurius refuses a connection_init without a valid token so).
    if (code === 4401 || code === 4403) return new CliError('UNAUTHENTICATED', `the subscription was refused (${code} ${reason || 'Forbidden'}): a valid token is required`)
    if (connected) return new CliError('SUBSCRIPTION_CLOSED', `the subscription's connection to ${url} closed (${code}${reason ? ` ${reason}` : ''})`)
    return new CliError('WEBSOCKET_UNAVAILABLE', `no WebSocket to ${url} (${connection.serverFrom}) could be opened (closed ${code}${reason ? ` ${reason}` : ''})`)
  }
  const e = err as (Error & { code?: string; message?: string }) | null
  return new CliError(connected ? 'SUBSCRIPTION_CLOSED' : 'WEBSOCKET_UNAVAILABLE', `no WebSocket to ${url} (${connection.serverFrom}): ${e?.message || e?.code || 'it failed'}`)
}
