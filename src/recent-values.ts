// A bounded memo: the manifest parses a rollout repeats on every node, and the
// parsed node observations a query over the fleet would otherwise re-read.

/** Remembers the most recently used `capacity` values; the least recently used one goes first. */
export class RecentValues<K, V> {
  // A Map iterates in insertion order, so re-inserting on use keeps the least recent first.
  readonly #values = new Map<K, V>()

  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const value = this.#values.get(key)
    if (value !== undefined) {
      this.#values.delete(key)
      this.#values.set(key, value)
    }
    return value
  }

  set(key: K, value: V): void {
    this.#values.delete(key)
    this.#values.set(key, value)
    if (this.#values.size > this.capacity) this.#values.delete(this.#values.keys().next().value as K)
  }

  delete(key: K): void {
    this.#values.delete(key)
  }

  get size(): number {
    return this.#values.size
  }
}
