// A small bounded memo for the manifest functions: the same bytes are parsed
// again and again (a rollout hands one manifest to hundreds of nodes, and each
// node's directory is linted before and after every write), and parsing YAML
// is by far the costliest step of the write path outside the network.

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
}

/** Inputs bigger than this are parsed every time: one huge file must not pin megabytes of parse trees. */
export const REMEMBERED_INPUT_MAX_BYTES = 256 * 1024
