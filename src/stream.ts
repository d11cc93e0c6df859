// A push stream as an async iterator, for subscriptions. Written by hand,
// not as an async generator: a generator waiting (on an await, or inside a
// yield*) cannot be ended by return() until it next yields, so a subscriber
// that disconnects from a quiet stream would stay registered for good.
// return() here ends the stream at once, whatever it is waiting for.

export class PushStream<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = []
  private waiting: ((result: IteratorResult<T>) => void) | null = null
  private failWaiting: ((err: unknown) => void) | null = null
  private failure: { error: unknown } | null = null
  private done = false

  /** onEnd: called once, when the consumer stops or the stream ends. */
  constructor(private readonly onEnd: () => void = () => undefined) {}

  /** Queued items not yet taken. */
  get length(): number {
    return this.queue.length
  }

  get ended(): boolean {
    return this.done
  }

  push(value: T): void {
    if (this.done || this.failure) return
    if (this.waiting) {
      const resolve = this.waiting
      this.clearWaiting()
      resolve({ value, done: false })
    } else {
      this.queue.push(value)
    }
  }

  /** Ends the stream with an error, after what is queued has been taken. */
  fail(error: unknown): void {
    if (this.done || this.failure) return
    this.failure = { error }
    if (this.failWaiting) {
      const reject = this.failWaiting
      this.clearWaiting()
      this.finish()
      reject(error)
    }
  }

  /** Ends the stream after what is queued has been taken. */
  end(): void {
    if (this.done) return
    if (this.waiting) {
      const resolve = this.waiting
      this.clearWaiting()
      this.finish()
      resolve({ value: undefined, done: true })
    } else if (this.queue.length === 0) {
      this.finish()
    } else {
      this.failure ??= { error: null }
    }
  }

  next(): Promise<IteratorResult<T>> {
    const value = this.queue.shift()
    if (value !== undefined) return Promise.resolve({ value, done: false })
    if (this.failure) {
      const { error } = this.failure
      this.finish()
      return error === null ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(error)
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => {
      this.waiting = resolve
      this.failWaiting = reject
    })
  }

  return(): Promise<IteratorResult<T>> {
    this.queue.length = 0
    if (this.waiting) {
      const resolve = this.waiting
      this.clearWaiting()
      resolve({ value: undefined, done: true })
    }
    this.finish()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  private clearWaiting(): void {
    this.waiting = null
    this.failWaiting = null
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.onEnd()
  }
}

/**
 * The iterator's items mapped, its errors mapped, and onEnd called once when
 * it ends or its consumer stops; return() reaches the source at once.
 */
export function guardedIterator<T>(source: AsyncIterator<T>, mapError: (err: unknown) => unknown, onEnd: () => void): AsyncIterableIterator<T> {
  let ended = false
  const end = () => {
    if (!ended) {
      ended = true
      onEnd()
    }
  }
  return {
    async next() {
      try {
        const result = await source.next()
        if (result.done) end()
        return result
      } catch (err) {
        end()
        throw mapError(err)
      }
    },
    async return() {
      end()
      // Not awaited: a generator source ends only when it next reaches a yield.
      void source.return?.()?.catch(() => undefined)
      return { value: undefined, done: true }
    },
    [Symbol.asyncIterator]() {
      return this
    },
  }
}
