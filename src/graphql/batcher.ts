// The one batching mechanism of GraphQL execution: it gathers what resolvers
// ask for during one step of a query and answers it with one load per group.
// graphql-js runs the resolvers of sibling fields and of every list item
// before the event loop turns, so a setImmediate sees every ask of the step.
// Asks are grouped by a parameter that the load takes as a whole (the maxAge of
// node states, the limit of histories; none for mirror pods), and each key is
// loaded at most once per group and batcher. src/graphql/scope.ts makes one
// batcher per kind of data and request, so nothing is shared across requests.

interface Ask<Item, Value> {
  item: Item
  resolve: (value: Value) => void
  reject: (err: unknown) => void
}

export interface StepBatcherOptions<Item, Value, Group> {
  /** Identifies an item within its group: asks of the same key share one answer. */
  key: (item: Item) => string
  /** Loads a group's items at once; answers in the order of the items. */
  load: (items: Item[], group: Group) => Promise<Value[]>
}

export class StepBatcher<Item, Value, Group = void> {
  private readonly asked = new Map<Group, Map<string, Promise<Value>>>()
  private pending = new Map<Group, Array<Ask<Item, Value>>>()

  constructor(private readonly o: StepBatcherOptions<Item, Value, Group>) {}

  /** The item's value, loaded with every other ask of this step in the same group. */
  get(item: Item, group: Group): Promise<Value> {
    const key = this.o.key(item)
    let byKey = this.asked.get(group)
    if (!byKey) {
      byKey = new Map()
      this.asked.set(group, byKey)
    }
    const known = byKey.get(key)
    if (known) return known
    const value = new Promise<Value>((resolve, reject) => {
      if (this.pending.size === 0) setImmediate(() => this.flush())
      let asks = this.pending.get(group)
      if (!asks) {
        asks = []
        this.pending.set(group, asks)
      }
      asks.push({ item, resolve, reject })
    })
    byKey.set(key, value)
    return value
  }

  private flush(): void {
    const groups = this.pending
    this.pending = new Map()
    for (const [group, asks] of groups) void this.loadGroup(group, asks)
  }

  private async loadGroup(group: Group, asks: Array<Ask<Item, Value>>): Promise<void> {
    try {
      const values = await this.o.load(
        asks.map((a) => a.item),
        group,
      )
      if (values.length !== asks.length) throw new Error(`a batch load answered ${values.length} values for ${asks.length} items`)
      asks.forEach((a, i) => a.resolve(values[i] as Value))
    } catch (err) {
      for (const a of asks) a.reject(err)
    }
  }
}
