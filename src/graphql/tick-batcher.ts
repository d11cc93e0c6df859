// Gathers the keys that resolvers ask for during one step of a GraphQL
// execution and loads them with one call. Resolvers of sibling fields and list
// items all run before the event loop turns, so setImmediate sees every ask of
// the step; each key is loaded at most once per request.

export class TickBatcher<V> {
  private readonly loaded = new Map<string, Promise<V>>()
  private pending: Array<{ key: string; resolve: (value: V) => void; reject: (err: unknown) => void }> = []

  constructor(
    /** Loads every key at once; a key missing from the answer gets `missing`. */
    private readonly loadMany: (keys: string[]) => Promise<Map<string, V>>,
    private readonly missing: V,
  ) {}

  get(key: string): Promise<V> {
    let value = this.loaded.get(key)
    if (!value) {
      value = new Promise<V>((resolve, reject) => {
        if (this.pending.length === 0) setImmediate(() => void this.flush())
        this.pending.push({ key, resolve, reject })
      })
      this.loaded.set(key, value)
    }
    return value
  }

  private async flush(): Promise<void> {
    const batch = this.pending
    this.pending = []
    try {
      const values = await this.loadMany(batch.map((p) => p.key))
      for (const p of batch) p.resolve(values.get(p.key) ?? this.missing)
    } catch (err) {
      for (const p of batch) p.reject(err)
    }
  }
}
