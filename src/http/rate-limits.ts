// Request budgets per key in fixed one-minute windows: per token after
// authentication (a GraphQL request costs one per mutation field), and per
// client address for requests without a valid token. Written here rather than
// taken from @fastify/rate-limit because that plugin counts one per request,
// runs as a route hook after the authentication hook and cannot charge a
// request several units; the rule itself is a dozen lines.

export interface Charge {
  allowed: boolean
  /** Seconds until the key's window starts over. */
  retryAfterSeconds: number
  limit: number
}

export class WindowCounter {
  /** key -> window; a Map keeps insertion order, so the oldest window is the first to go when full. */
  readonly #windows = new Map<string, { startedAt: number; used: number }>()

  constructor(
    readonly limit: number,
    private readonly windowMs = 60_000,
    /** Keys held at most: a flood of client addresses cannot grow this without bound. */
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts `units` against the key (even when refused: a client over its limit stays over it). */
  charge(key: string, units = 1): Charge {
    const window = this.#current(key)
    window.used += units
    return this.#answer(window, window.used <= this.limit)
  }

  /** Whether the key has used up its window, without counting anything. */
  check(key: string): Charge {
    const window = this.#current(key)
    return this.#answer(window, window.used < this.limit)
  }

  #current(key: string): { startedAt: number; used: number } {
    const now = this.now()
    let window = this.#windows.get(key)
    if (!window || now - window.startedAt >= this.windowMs) {
      this.#windows.delete(key)
      window = { startedAt: now, used: 0 }
      this.#windows.set(key, window)
      if (this.#windows.size > this.maxKeys) this.#windows.delete(this.#windows.keys().next().value as string)
    }
    return window
  }

  #answer(window: { startedAt: number }, allowed: boolean): Charge {
    const retryAfterSeconds = Math.max(1, Math.ceil((window.startedAt + this.windowMs - this.now()) / 1000))
    return { allowed, retryAfterSeconds, limit: this.limit }
  }
}
