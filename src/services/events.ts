// Events: what the service saw change on its nodes (node-state stores them
// with the observation that showed the change), what rollouts did, and
// certificates entering their warning window. This service lists them, streams
// them to subscribers and hands them to the webhooks.
//
// Subscribers are fed from the store, not from this process's memory: an event
// recorded by another instance sharing the store reaches this instance's
// subscribers too. One tail per process reads the events after the last one it
// delivered, every pollMs while anyone subscribes, and at once when this
// process records one. That needs ids to become visible in increasing order:
// SQLite commits them so, and the DynamoDB store allocates an id in the same
// transaction that writes its event. A subscriber that passes `after` is first given the
// stored events after it, then the live ones, with none missing or doubled
// between the two.

import type { Logger } from 'pino'
import { EVENT_TYPES, type EventRecord, type EventType, type NewEvent } from '../domain.ts'
import { ServiceError, quoteInput } from '../errors.ts'
import type { Store } from '../store/store.ts'
import { authorize, canSeeNode, matchesNodeGlobs, type Actor } from './actor.ts'
import type { EventSink } from './node-state.ts'
import { PushStream } from '../stream.ts'

/** The part of the webhook service events need: it never blocks and never throws. */
interface EventPublisher {
  publish(events: readonly EventRecord[]): void
}

export interface EventServiceOptions {
  store: Store
  log: Logger
  clock: () => Date
  webhooks: EventPublisher
  /** EVENT_RETENTION_DAYS. */
  retentionDays: number
  /** How often the tail reads the store while anyone subscribes (other instances' events arrive this late at most). */
  pollMs?: number | undefined
  /** Told of every event this instance records (metrics). */
  onRecorded?: ((events: readonly EventRecord[]) => void) | undefined
}

export interface EventListArgs {
  node?: string | null | undefined
  types?: readonly EventType[] | null | undefined
  limit?: number | null | undefined
  before?: string | null | undefined
}

export interface EventSubscriptionArgs {
  nodes?: readonly string[] | null | undefined
  types?: readonly EventType[] | null | undefined
  after?: string | null | undefined
}

const MAX_LIST_LIMIT = 1000
const DEFAULT_LIST_LIMIT = 100
/** A listing for a token limited to some nodes filters pages of this size, at most MAX_SCOPED_PAGES of them. */
const SCOPED_PAGE = 500
const MAX_SCOPED_PAGES = 20
/** Stored events a reconnecting subscriber may be behind; further back, the events query pages through them. */
const MAX_REPLAY = 10_000
const REPLAY_PAGE = 500
/** Events waiting for one slow subscriber; past it the subscription ends with an error saying where to resume. */
const MAX_QUEUED = 1000
const MAX_NODE_GLOBS = 64
const TAIL_PAGE = 500

/** One subscriber: its filter, its stream, and where it is. */
interface Subscriber {
  wants(event: EventRecord): boolean
  stream: PushStream<EventRecord>
  /** The last id it was given (or that its replay passed); null: none yet. */
  last: bigint | null
  /** Live events that arrived while its replay ran; null once it has caught up. */
  replaying: EventRecord[] | null
}

export class EventService implements EventSink {
  private readonly subscribers = new Set<Subscriber>()
  /** The highest id the tail has delivered; null until the first subscriber starts the tail. */
  private cursor: bigint | null = null
  private tailTimer: NodeJS.Timeout | null = null
  private tailing: Promise<void> | null = null
  private tailAgain = false
  private closed = false
  private readonly pollMs: number

  constructor(private readonly o: EventServiceOptions) {
    this.pollMs = o.pollMs ?? 1000
  }

  /** Newest first; only the nodes the actor may see. */
  async list(args: EventListArgs, actor: Actor): Promise<EventRecord[]> {
    authorize(actor, 'viewer')
    const limit = args.limit ?? DEFAULT_LIST_LIMIT
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ServiceError('VALIDATION_FAILED', `limit must be 1 to ${MAX_LIST_LIMIT}; got ${limit}`, ['limit'])
    }
    const before = eventIdArg(args.before, 'before')
    const node = args.node ?? undefined
    if (node !== undefined) authorize(actor, 'viewer', node)
    const types = typesArg(args.types)
    if (actor.nodes === null || node !== undefined) return this.o.store.listEvents({ before, node, types, limit, order: 'newest' })
    // A token limited to some nodes: filter pages, bounded, so a token whose nodes are quiet cannot make one request read every event.
    const seen: EventRecord[] = []
    let cursor = before
    for (let page = 0; page < MAX_SCOPED_PAGES && seen.length < limit; page++) {
      const events = await this.o.store.listEvents({ before: cursor, types, limit: SCOPED_PAGE, order: 'newest' })
      seen.push(...events.filter((e) => canSeeNode(actor, e.node)))
      if (events.length < SCOPED_PAGE) break
      cursor = events[events.length - 1]?.id
    }
    return seen.slice(0, limit)
  }

  /** Stores events that are not about an observation (rollouts, certificates), then delivers them. */
  async append(events: readonly NewEvent[]): Promise<EventRecord[]> {
    if (events.length === 0) return []
    const stored = await this.o.store.appendEvents(events)
    this.recorded(stored)
    return stored
  }

  /** Events this process just stored: to the webhooks now, and to subscribers by the tail (which reads them back in order). */
  recorded(events: readonly EventRecord[]): void {
    if (events.length === 0) return
    this.o.onRecorded?.(events)
    this.o.webhooks.publish(events)
    if (this.subscribers.size > 0) this.pollSoon()
  }

  /**
   * The events after `after` (replayed from the store), then every new one, for
   * the nodes the actor may see and the filter asks, each once and in id order.
   * Ends when the consumer stops (return()), or with an error when it falls
   * MAX_QUEUED events behind. Bad arguments throw here, before anything runs.
   */
  subscribe(args: EventSubscriptionArgs, actor: Actor): AsyncIterableIterator<EventRecord> {
    authorize(actor, 'viewer')
    const after = eventIdArg(args.after, 'after')
    const types = new Set(typesArg(args.types) ?? [])
    const globs = nodeGlobsArg(args.nodes)
    const subscriber: Subscriber = {
      wants: (e) => canSeeNode(actor, e.node) && (types.size === 0 || types.has(e.type)) && (globs.length === 0 || matchesNodeGlobs(globs, e.node)),
      stream: new PushStream<EventRecord>(() => {
        this.subscribers.delete(subscriber)
        if (this.subscribers.size === 0) this.stopTail()
      }),
      last: null,
      replaying: [],
    }
    void this.start(subscriber, after, types).catch((err: unknown) => subscriber.stream.fail(err))
    return subscriber.stream
  }

  /**
   * Registers the subscriber before the replay reads the store, so that
   * nothing stored meanwhile falls between the two: what the tail brings while
   * the replay runs waits in `replaying`, and only ids past the replay's last go out.
   */
  private async start(subscriber: Subscriber, after: string | undefined, types: ReadonlySet<EventType>): Promise<void> {
    await this.startTail()
    if (subscriber.stream.ended) return
    this.subscribers.add(subscriber)
    subscriber.last = after === undefined ? this.cursor : BigInt(after)
    if (after !== undefined) {
      for await (const event of this.replay(after, types)) {
        if (subscriber.stream.ended) return
        if (subscriber.wants(event)) subscriber.stream.push(event)
        subscriber.last = BigInt(event.id)
      }
    }
    const caughtUp = subscriber.replaying ?? []
    subscriber.replaying = null
    for (const event of caughtUp) this.deliver(subscriber, event)
  }

  /** One event to one subscriber: once, in id order, bounded. */
  private deliver(subscriber: Subscriber, event: EventRecord): void {
    if (!subscriber.wants(event)) return
    if (subscriber.replaying !== null) {
      subscriber.replaying.push(event)
      if (subscriber.replaying.length > MAX_QUEUED) subscriber.stream.fail(this.tooSlow(subscriber))
      return
    }
    const id = BigInt(event.id)
    if (subscriber.last !== null && id <= subscriber.last) return
    if (subscriber.stream.length >= MAX_QUEUED) {
      subscriber.stream.fail(this.tooSlow(subscriber))
      return
    }
    subscriber.last = id
    subscriber.stream.push(event)
  }

  private tooSlow(subscriber: Subscriber): ServiceError {
    return new ServiceError(
      'BUSY',
      `this subscription fell more than ${MAX_QUEUED} events behind and was ended; subscribe again with after: "${subscriber.last ?? ''}" to resume`,
    )
  }

  /** Forgets events older than the retention (EVENT_RETENTION_DAYS); bounded work per call. */
  async prune(): Promise<number> {
    const before = new Date(this.o.clock().getTime() - this.o.retentionDays * 86_400_000).toISOString()
    let removed = 0
    for (let batch = 0; batch < 100; batch++) {
      const n = await this.o.store.pruneEvents(before)
      removed += n
      if (n === 0) break
    }
    return removed
  }

  /** Ends every subscription (app.close()). */
  close(): void {
    this.closed = true
    this.stopTail()
    for (const s of [...this.subscribers]) s.stream.end()
  }

  private async *replay(after: string, types: ReadonlySet<EventType>): AsyncGenerator<EventRecord> {
    let cursor = after
    let replayed = 0
    for (;;) {
      const page = await this.o.store.listEvents({ after: cursor, types: types.size ? [...types] : undefined, limit: REPLAY_PAGE, order: 'oldest' })
      for (const event of page) yield event
      replayed += page.length
      const lastOfPage = page[page.length - 1]
      if (page.length < REPLAY_PAGE || lastOfPage === undefined) return
      if (replayed >= MAX_REPLAY) {
        throw new ServiceError('VALIDATION_FAILED', `more than ${MAX_REPLAY} events are stored after ${quoteInput(after)}: read them with the events query (before:) and subscribe after the newest`, ['after'])
      }
      cursor = lastOfPage.id
    }
  }

  private async startTail(): Promise<void> {
    if (this.cursor === null) {
      const [newest] = await this.o.store.listEvents({ limit: 1, order: 'newest' })
      this.cursor ??= newest ? BigInt(newest.id) : 0n
    }
    if (this.tailTimer === null && !this.closed) this.scheduleTail()
  }

  private stopTail(): void {
    if (this.tailTimer !== null) clearTimeout(this.tailTimer)
    this.tailTimer = null
  }

  private scheduleTail(): void {
    this.tailTimer = setTimeout(() => this.pollSoon(), this.pollMs)
    this.tailTimer.unref()
  }

  /** Reads the store's new events now (or right after the read in progress). */
  private pollSoon(): void {
    if (this.tailing) {
      this.tailAgain = true
      return
    }
    this.tailing = this.tail()
      .catch((err: unknown) => this.o.log.warn({ err }, 'events: reading new events from the store failed; retrying'))
      .finally(() => {
        this.tailing = null
        if (this.subscribers.size === 0 || this.closed) return
        if (this.tailAgain) {
          this.tailAgain = false
          this.pollSoon()
        } else {
          this.stopTail()
          this.scheduleTail()
        }
      })
  }

  private async tail(): Promise<void> {
    while (this.cursor !== null) {
      const page = await this.o.store.listEvents({ after: String(this.cursor), limit: TAIL_PAGE, order: 'oldest' })
      for (const event of page) {
        this.cursor = BigInt(event.id)
        for (const s of this.subscribers) this.deliver(s, event)
      }
      if (page.length < TAIL_PAGE) return
    }
  }
}

/** An event id argument: a decimal integer (the ids the service hands out). */
function eventIdArg(value: string | null | undefined, field: 'after' | 'before'): string | undefined {
  if (value === null || value === undefined) return undefined
  if (!/^\d{1,20}$/.test(value)) throw new ServiceError('VALIDATION_FAILED', `${field} must be an event id (a decimal number, as Event.id); got ${quoteInput(value)}`, [field])
  return String(BigInt(value))
}

function typesArg(types: readonly EventType[] | null | undefined): EventType[] | undefined {
  if (!types || types.length === 0) return undefined
  for (const t of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new ServiceError('VALIDATION_FAILED', `unknown event type ${quoteInput(t)}`, ['types'])
  }
  return [...new Set(types)]
}

function nodeGlobsArg(nodes: readonly string[] | null | undefined): string[] {
  if (!nodes) return []
  if (nodes.length > MAX_NODE_GLOBS) throw new ServiceError('VALIDATION_FAILED', `at most ${MAX_NODE_GLOBS} node names or globs`, ['nodes'])
  for (const n of nodes) {
    if (n.length === 0 || n.length > 253) throw new ServiceError('VALIDATION_FAILED', 'a node name or glob is 1 to 253 characters', ['nodes'])
  }
  return [...nodes]
}
