// Parsed node observations kept between requests. Without it, every query
// over 1,000 nodes read and parsed every node's stored observation (about 5 MB
// of JSON), nearly all of them unchanged since the last query.
//
// The store is still asked on every read, for each observation's version
// (Store.getObservationsIfChanged), and sends the text of those whose version
// is not the one held here. So a read is exactly as current as reading the
// store directly, observations other instances stored included: only the
// reading and parsing of unchanged ones is saved.
//
// Every request shares the cached objects, so they are frozen: code that
// tried to change one fails at once instead of changing what the next request sees.

import { deepFreeze } from '../deep-freeze.ts'
import { RecentValues } from '../recent-values.ts'
import type { NodeObservation } from '../domain.ts'
import type { Store } from '../store/store.ts'

interface Held {
  version: string
  observation: NodeObservation
}

/** Far more than a fleet's control-plane nodes; bounds what removed nodes leave behind. */
const DEFAULT_MAX_NODES = 10_000

export class ObservationCache {
  private readonly byNode: RecentValues<string, Held>

  constructor(
    private readonly store: Store,
    maxNodes: number = DEFAULT_MAX_NODES,
  ) {
    this.byNode = new RecentValues(maxNodes)
  }

  /** The stored observation of each node, as Store.getObservations (frozen); one store call. */
  async read(nodes: string[]): Promise<Map<string, NodeObservation>> {
    const observations = new Map<string, NodeObservation>()
    for (const [node, { observation }] of await this.readVersioned(nodes)) observations.set(node, observation)
    return observations
  }

  /**
   * The same, with the version each was stored under (null: stored by an
   * older release): what a conditional store of the next observation compares.
   */
  async readVersioned(nodes: string[]): Promise<Map<string, { version: string | null; observation: NodeObservation }>> {
    // What this read holds, so that a concurrent read replacing an entry cannot change its answer.
    const held = new Map<string, Held>()
    for (const node of nodes) {
      const entry = this.byNode.get(node)
      if (entry) held.set(node, entry)
    }
    const known = new Map<string, string>()
    for (const [node, entry] of held) known.set(node, entry.version)
    const stored = await this.store.getObservationsIfChanged(nodes, known)

    const observations = new Map<string, { version: string | null; observation: NodeObservation }>()
    for (const node of nodes) {
      const current = stored.get(node)
      this.byNode.delete(node)
      if (!current) continue
      if (current.observation === null) {
        const entry = held.get(node)
        if (!entry) throw new Error(`the store reported ${node}'s observation unchanged from a version this reader does not hold`)
        observations.set(node, entry)
        this.byNode.set(node, entry)
      } else {
        const observation = deepFreeze(current.observation)
        observations.set(node, { version: current.version, observation })
        // Without a version (stored by an older release) it cannot be told unchanged next time.
        if (current.version !== null) this.byNode.set(node, { version: current.version, observation })
      }
    }
    return observations
  }

  /** How many nodes' observations are held (tests). */
  get size(): number {
    return this.byNode.size
  }
}
