// A property computed when first read, then kept. For what a result carries
// that most callers never read: a write's unified diff costs more CPU than the
// rest of the service's work on its answer, and a rollout to 50 nodes made 50
// of them for callers that asked for each node's status. Enumerable, so
// JSON.stringify and GraphQL's field resolution read it like any property;
// spreading the object reads it too (then it is computed there).

export function withLazyProperty<T extends object, K extends string, V>(target: T, key: K, compute: () => V): T & Record<K, V> {
  let computed = false
  let value: V
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get(): V {
      if (!computed) {
        value = compute()
        computed = true
      }
      return value
    },
  })
  return target as T & Record<K, V>
}
