// A byte budget shared by the requests in flight. Parsing a manifest costs a
// multiple of its size in heap, and a request holds its body, its text and the
// parsed object until it is answered; without a bound, a few concurrent 10 MB
// PUTs end the process. So every request with a body larger than a small
// threshold reserves its size before its body is read, and gives it back once
// it is answered (or its connection is gone and no handler runs any more).
//
// - The reservation is made in a preParsing hook: after authentication and
//   the rate limits (onRequest), so an anonymous caller cannot hold the budget,
//   and before the body is read, so a waiting request holds only what the
//   socket buffers (TCP pushes back on the client).
// - Size: content-length; a chunked body (no content-length) reserves the body
//   limit. A request larger than the whole budget reserves the whole budget, so
//   it is served when it is alone, never refused for its size here.
// - First come, first served: a request that does not fit waits behind the
//   earlier ones up to waitMs, then gets 503 BUSY with Retry-After.
// - Given back when the response is done or the connection closes; if the
//   connection closes while the handler still runs (the body was read), when
//   the handler has answered (onSend), since until then it still holds the parse.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { sendApiError } from './auth.ts'

/** Bodies up to this size are not counted: small requests are never made to wait. */
const BUDGET_THRESHOLD_BYTES = 64 * 1024

export interface ManifestBudgetOptions {
  /** Bytes of request bodies that may be in flight at once. */
  bytes: number
  /** How long a request waits for room before it gets 503. */
  waitMs: number
  /** Bodies up to this size skip the budget (BUDGET_THRESHOLD_BYTES by default). */
  thresholdBytes?: number
}

export interface BudgetLease {
  readonly bytes: number
  /** Gives the bytes back; only the first call counts. */
  release(): void
}

interface Waiter {
  bytes: number
  grant(lease: BudgetLease | null): void
}

/** Bytes handed out first come, first served, up to a capacity. */
export class ByteBudget {
  #inUse = 0
  readonly #waiting: Waiter[] = []

  constructor(readonly capacity: number) {}

  /** Bytes reserved now. */
  get inUse(): number {
    return this.#inUse
  }

  /** Requests waiting for room now. */
  get waiting(): number {
    return this.#waiting.length
  }

  /**
   * Reserves min(bytes, capacity): at once when it fits and nobody waits,
   * else after the earlier waiters, within waitMs; null when the time is up
   * or the signal aborts first.
   */
  acquire(bytes: number, waitMs: number, signal?: AbortSignal): Promise<BudgetLease | null> {
    const amount = Math.min(Math.max(0, bytes), this.capacity)
    if (this.#waiting.length === 0 && this.#inUse + amount <= this.capacity) return Promise.resolve(this.#lease(amount))
    if (waitMs <= 0 || signal?.aborted) return Promise.resolve(null)
    return new Promise((resolve) => {
      const giveUp = (): void => {
        const at = this.#waiting.indexOf(waiter)
        if (at === -1) return
        this.#waiting.splice(at, 1)
        waiter.grant(null)
        // Those behind it may fit now.
        this.#serveWaiting()
      }
      const timer = setTimeout(giveUp, waitMs)
      signal?.addEventListener('abort', giveUp, { once: true })
      const waiter: Waiter = {
        bytes: amount,
        grant: (lease) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', giveUp)
          resolve(lease)
        },
      }
      this.#waiting.push(waiter)
    })
  }

  #lease(bytes: number): BudgetLease {
    this.#inUse += bytes
    let released = false
    return {
      bytes,
      release: () => {
        if (released) return
        released = true
        this.#inUse -= bytes
        this.#serveWaiting()
      },
    }
  }

  #serveWaiting(): void {
    for (let next = this.#waiting[0]; next && this.#inUse + next.bytes <= this.capacity; next = this.#waiting[0]) {
      this.#waiting.shift()
      next.grant(this.#lease(next.bytes))
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The budget of manifestBudget (for metrics and tests). */
    manifestBudget: ByteBudget
  }
}

/** Retry-After for a 503 BUSY: the wait the request already had, in whole seconds (at least 1). */
function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000))
}

/** The plugin: `await app.register(manifestBudget(config.manifestBudget))`. */
export function manifestBudget(options: ManifestBudgetOptions) {
  return fp(
    async (app: FastifyInstance) => {
      const budget = new ByteBudget(options.bytes)
      const threshold = options.thresholdBytes ?? BUDGET_THRESHOLD_BYTES
      const retryAfter = retryAfterSeconds(options.waitMs)
      /** Requests holding a lease, and whether their handler has answered. */
      const held = new WeakMap<FastifyRequest, { answered(): void }>()
      app.decorate('manifestBudget', budget)

      // Callback style on purpose: a request refused here is answered without calling done(), as
      // Fastify documents, so no later hook or handler runs for it.
      app.addHook('preParsing', (request, reply, payload, done) => {
        const size = reservedSize(request, app.initialConfig.bodyLimit ?? Number.POSITIVE_INFINITY, threshold)
        if (size === 0) {
          done(null, payload)
          return
        }
        const gone = new AbortController()
        const onClose = (): void => gone.abort()
        reply.raw.once('close', onClose)
        if (connectionClosed(request)) gone.abort()
        budget.acquire(size, options.waitMs, gone.signal).then(
          (lease) => {
            reply.raw.off('close', onClose)
            if (lease === null) {
              reply.header('retry-after', String(retryAfter))
              sendApiError(
                request,
                reply,
                503,
                'BUSY',
                `the server is busy with other large requests (${budget.inUse} of ${budget.capacity} bytes of request bodies in flight); retry in ${retryAfter} s`,
              )
              return
            }
            hold(request, reply, lease)
            done(null, payload)
          },
          (err: unknown) => done(err as Error),
        )
      })

      function hold(request: FastifyRequest, reply: FastifyReply, lease: BudgetLease): void {
        let answered = false
        let closed = false
        held.set(request, {
          answered: () => {
            answered = true
            if (closed) lease.release()
          },
        })
        const onClose = (): void => {
          closed = true
          // With the body not all there, no handler runs (the body parser fails); else wait for its answer.
          if (answered || !request.raw.complete) lease.release()
        }
        if (connectionClosed(request)) onClose()
        else reply.raw.once('close', onClose)
      }

      app.addHook('onSend', (request, _reply, payload, done) => {
        held.get(request)?.answered()
        done(null, payload)
      })
    },
    { name: 'staticpod-manifest-budget' },
  )
}

/** The bytes a request reserves: 0 for no body or a small one, or one that will be refused for its size unread. */
function reservedSize(request: FastifyRequest, appBodyLimit: number, threshold: number): number {
  const bodyLimit = request.routeOptions.bodyLimit ?? appBodyLimit
  const length = request.headers['content-length']
  if (length !== undefined) {
    const bytes = Number(length)
    return Number.isFinite(bytes) && bytes > threshold && bytes <= bodyLimit ? bytes : 0
  }
  // Chunked: the size is not known before the body is read, so the most it may be.
  return request.headers['transfer-encoding'] !== undefined && Number.isFinite(bodyLimit) ? bodyLimit : 0
}

function connectionClosed(request: FastifyRequest): boolean {
  const socket = request.raw.socket as { destroyed?: boolean } | null
  return socket === null || socket.destroyed === true
}
