// A circuit breaker in front of the API server. When it is down, the first
// call pays for finding out (at most one request timeout); until retryAfterMs
// has passed, every later call fails at once without contacting it, so a
// query over 1,000 static pods, or a client polling, never waits on a dead
// server again and again. After retryAfterMs the next call is the probe:
// it goes through, and its success closes the breaker. Calls made while it
// runs wait for it (the fields of one query ask in the same instant): they go
// through if it succeeded and fail with it if not, so none waits longer than
// one request timeout.
//
// Only a failure to get an answer opens it (no connection, timeout, 5xx, 429).
// An answer such as 404 or 403 proves the server is up.

export interface BreakerOutcome {
  ok: boolean
  at: string
  /** Why the last call failed; null after a success. */
  error: string | null
}

/**
 * closed: calls go through. open: they fail at once. half-open: retryAfterMs
 * has passed since it opened, so the next call is the probe (or the probe is
 * running now).
 */
export type BreakerState = 'closed' | 'open' | 'half-open'

export class BreakerOpenError extends Error {
  override readonly name = 'BreakerOpenError'
}

export class CircuitBreaker {
  private openedAt: number | null = null
  private probe: Promise<unknown> | null = null
  private last: BreakerOutcome | null = null

  constructor(
    private readonly options: {
      retryAfterMs: number
      clock: () => Date
      /** Whether an error means the server gave no answer (opens the breaker). */
      isOutage: (err: unknown) => boolean
    },
  ) {}

  get isOpen(): boolean {
    return this.openedAt !== null
  }

  get state(): BreakerState {
    if (this.openedAt === null) return 'closed'
    if (this.probe || this.options.clock().getTime() - this.openedAt >= this.options.retryAfterMs) return 'half-open'
    return 'open'
  }

  /** The last call's outcome; null before the first call. */
  get lastOutcome(): BreakerOutcome | null {
    return this.last
  }

  /** Runs fn unless the breaker is open; fails fast with BreakerOpenError then. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.probe) await this.probe.catch(() => undefined)
    if (this.openedAt === null) return this.attempt(fn)
    if (this.options.clock().getTime() - this.openedAt < this.options.retryAfterMs) {
      throw new BreakerOpenError(`${this.last?.error ?? 'the API server did not answer'} (not asked again for ${this.options.retryAfterMs} ms since)`)
    }
    const probe = this.attempt(fn)
    this.probe = probe
    try {
      return await probe
    } finally {
      this.probe = null
    }
  }

  private async attempt<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn()
      this.record(true, null)
      return result
    } catch (err) {
      if (this.options.isOutage(err)) this.record(false, err instanceof Error ? err.message : String(err))
      else this.record(true, null)
      throw err
    }
  }

  private record(ok: boolean, error: string | null): void {
    const now = this.options.clock()
    this.last = { ok, at: now.toISOString(), error }
    this.openedAt = ok ? null : now.getTime()
  }
}
