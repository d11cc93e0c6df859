// A bounded memo: the manifest parses a rollout repeats on every node, and the
// parsed node observations a query over the fleet would otherwise re-read.

/**
 * Remembers the most recently used `capacity` values; the least recently used one goes first.
 * With `maxWeight`, each value may also be given a weight (e.g. the bytes of the source it was
 * made from), and the least recently used values go until the total weight is at most that.
 * A value heavier than maxWeight on its own is not kept.
 */
export class RecentValues<K, V> {
  // A Map iterates in insertion order, so re-inserting on use keeps the least recent first.
  readonly #values = new Map<K, V>()
  readonly #weights = new Map<K, number>()
  #totalWeight = 0

  constructor(
    private readonly capacity: number,
    private readonly maxWeight: number = Number.POSITIVE_INFINITY,
  ) {}

  get(key: K): V | undefined {
    const value = this.#values.get(key)
    if (value !== undefined) {
      this.#values.delete(key)
      this.#values.set(key, value)
    }
    return value
  }

  set(key: K, value: V, weight = 0): void {
    this.delete(key)
    if (weight > this.maxWeight) return
    this.#values.set(key, value)
    if (weight > 0) {
      this.#weights.set(key, weight)
      this.#totalWeight += weight
    }
    while (this.#values.size > this.capacity || this.#totalWeight > this.maxWeight) {
      this.delete(this.#values.keys().next().value as K)
    }
  }

  delete(key: K): void {
    this.#values.delete(key)
    const weight = this.#weights.get(key)
    if (weight !== undefined) {
      this.#weights.delete(key)
      this.#totalWeight -= weight
    }
  }

  get size(): number {
    return this.#values.size
  }

  /** The total weight of the values held. */
  get weight(): number {
    return this.#totalWeight
  }
}
