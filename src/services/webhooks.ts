// Webhooks (chatops): the records and their rules, and the delivery of events
// to them.
//
// - create / delete / list are for an admin of every node (a token limited to
//   some nodes would otherwise see, or post elsewhere, events of nodes it may
//   not see), audited through runMutation like every mutation. The secret is
//   sealed (SecretBox) before it reaches the store and is never shown again.
// - A webhook URL can carry a secret of its own (Slack's and Teams' do, in the
//   path): neither the log, nor the audit, nor an error message names more of
//   it than its origin.
// - publish(events) is synchronous and never throws: it puts the events on an
//   intake list and returns. In the background the webhook list is read from
//   the store (kept at most `cacheMs`, forgotten at once on this instance's
//   create and delete), each event is matched (types, node globs; empty: all)
//   and a delivery is queued per matching webhook.
// - Each webhook has a lane of its own: at most maxInFlightPerWebhook POSTs at
//   once, retries waiting on timers (holding no slot) and going before new
//   deliveries when due, and at most maxPendingPerWebhook deliveries queued,
//   waiting or in flight; one more is given up at once (counted, logged once a
//   minute per webhook). A slow or dead receiver therefore delays only its own
//   lane, never another webhook or publish's caller.
// - An attempt: POST of the event's JSON (plus `text`), signed with
//   HMAC-SHA256 of the exact body bytes; redirects are not followed; 2xx ends
//   the delivery, anything else (or no answer within timeoutMs) is retried
//   after firstRetryMs, doubling (with a little jitter, at most
//   MAX_RETRY_DELAY_MS), maxAttempts attempts in all. Every delivery's end
//   (delivered, or given up) is recorded on the webhook
//   (store.recordWebhookDelivery).

import { createHmac, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { EVENT_TYPES, type EventRecord, type EventType, type WebhookRecord } from '../domain.ts'
import { errorText, quoteInput, ServiceError, ValidationErrors, type UserError } from '../errors.ts'
import { eventText } from '../events/text.ts'
import type { Store } from '../store/store.ts'
import { authorize, matchesNodeGlobs, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { SecretBox } from './secret-box.ts'

export interface WebhookInput {
  url: string
  /** Empty, null or absent: every type. */
  types?: EventType[] | null
  /** Node name globs; empty, null or absent: every node. */
  nodes?: string[] | null
  secret: string
}

/** The contract's Webhook: the record without its secret (and without createdBy). */
export interface WebhookView {
  id: string
  url: string
  types: EventType[]
  nodes: string[]
  createdAt: string
  lastDeliveryAt: string | null
  lastResult: string | null
  failedDeliveries: number
}

/** The contract's WebhookPayload. */
export interface WebhookPayload {
  webhook: WebhookView | null
  userErrors: UserError[]
}

/** The contract's RemoveNodePayload, which deleteWebhook answers with. */
export interface WebhookRemoval {
  removed: boolean
  userErrors: UserError[]
}

export interface WebhookServiceOptions {
  store: Store
  audit: AuditService
  clock: () => Date
  log: Logger
  /** Seals and opens the secrets; null (no WEBHOOK_SECRET_KEY): no webhook can be created, and stored ones are not delivered to. */
  box: SecretBox | null
  /** WEBHOOK_MAX_ATTEMPTS: attempts per delivery, the first included. Default 8. */
  maxAttempts?: number | undefined
  /** Wait before the first retry; each further one waits twice as long. Default 1000. */
  firstRetryMs?: number | undefined
  /** No answer (status line and headers) within this: the attempt failed. Default 10_000. */
  timeoutMs?: number | undefined
  /** Webhooks there may be at most (in the store). Default 50. */
  maxWebhooks?: number | undefined
  /** Deliveries one webhook may have queued, waiting to be retried or in flight. Default 1000. */
  maxPendingPerWebhook?: number | undefined
  /** POSTs in flight to one webhook at most. Default 4. */
  maxInFlightPerWebhook?: number | undefined
  /** How long the webhook list read from the store is used. Default 2000. */
  cacheMs?: number | undefined
  /** Instead of the global fetch (tests). */
  fetch?: typeof fetch | undefined
}

const WEBHOOK_DEFAULTS = {
  maxAttempts: 8,
  firstRetryMs: 1000,
  timeoutMs: 10_000,
  maxWebhooks: 50,
  maxPendingPerWebhook: 1000,
  maxInFlightPerWebhook: 4,
  cacheMs: 2000,
} as const

const MAX_URL = 2048
const MAX_NODE_GLOBS = 64
const MAX_GLOB = 253
const NODE_GLOB = /^[A-Za-z0-9.*?_-]+$/
const MIN_SECRET = 8
const MAX_SECRET = 1024
/** However many attempts: no retry waits longer than this (and a timer never overflows). */
const MAX_RETRY_DELAY_MS = 10 * 60_000
/** Up to this much of a retry's wait is added at random, so retries of many deliveries spread out. */
const RETRY_JITTER = 0.1
/** A lastResult is at most this long. */
const MAX_RESULT = 200
/** Events waiting for the webhook list at most (while the store does not answer); more are dropped, and logged. */
const MAX_INTAKE = 10_000
/** After a failed read of the webhook list with nothing read before, wait this long before the next one. */
const LIST_RETRY_MS = 1000
/** A webhook's given-up deliveries of one kind (queue full, cannot sign) are logged at most once in this. */
const LOG_EVERY_MS = 60_000
const USER_AGENT = 'staticpod-api'

/** A stored webhook as deliveries need it. */
interface Target {
  id: string
  href: string
  origin: string
  types: ReadonlySet<EventType> | null
  nodes: readonly string[]
  /** The secret in clear; null when it cannot be opened (then `problem` says why). */
  secret: string | null
  problem: string | null
}

interface Delivery {
  /** Order of arrival in this process: retries that are due go before later deliveries. */
  seq: number
  /** X-Staticpod-Delivery, the same on every attempt. */
  id: string
  type: EventType
  body: Buffer
  signature: string
  attempts: number
}

/** One webhook's deliveries. */
interface Lane {
  target: Target
  /** Due, oldest first (by seq). */
  ready: Delivery[]
  /** Retries waiting on their timers. */
  waiting: Map<Delivery, NodeJS.Timeout>
  inFlight: number
  /** Aborts the lane's requests in flight (delete, close). */
  controller: AbortController
  /** Per kind of given-up delivery (queue full, cannot sign): when it was last logged, and how many since. */
  notices: Map<string, { loggedAt: number; since: number }>
}

export class WebhookService {
  readonly #o: WebhookServiceOptions
  readonly #settings: { [K in keyof typeof WEBHOOK_DEFAULTS]: number }
  readonly #fetch: typeof fetch
  readonly #lanes = new Map<string, Lane>()
  readonly #intake: EventRecord[] = []
  #intakeDropped = 0
  #intakeDropLoggedAt = -Infinity
  #pumping = false
  #pumpWait: { timer: NodeJS.Timeout; resolve: () => void } | null = null
  #cache: { readAt: number; targets: Target[] } | null = null
  /** Moves on at every create and delete here: a list read that began before one is not used. */
  #generation = 0
  #seq = 0
  /** Attempts in flight and store writes of their outcome, for idle() and close(). */
  readonly #running = new Set<Promise<void>>()
  #idleWaiters: Array<() => void> = []
  /** creates take turns, so two at once cannot both pass the maxWebhooks check. */
  #createTurn: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor(options: WebhookServiceOptions) {
    this.#o = options
    const pick = (k: keyof typeof WEBHOOK_DEFAULTS, min: number): number => {
      const v = options[k]
      if (v === undefined) return WEBHOOK_DEFAULTS[k]
      if (!Number.isFinite(v) || v < min) throw new Error(`WebhookService: ${k} must be a number >= ${min}, not ${v}`)
      return v
    }
    this.#settings = {
      maxAttempts: pick('maxAttempts', 1),
      firstRetryMs: pick('firstRetryMs', 0),
      timeoutMs: pick('timeoutMs', 1),
      maxWebhooks: pick('maxWebhooks', 0),
      maxPendingPerWebhook: pick('maxPendingPerWebhook', 1),
      maxInFlightPerWebhook: pick('maxInFlightPerWebhook', 1),
      cacheMs: pick('cacheMs', 0),
    }
    this.#fetch = options.fetch ?? fetch
  }

  // ------------------------------------------------------------- records

  /** Admin of every node. Every webhook, oldest first, without secrets. */
  async list(actor: Actor): Promise<WebhookView[]> {
    authorize(actor, 'admin')
    requireAllNodes(actor)
    return (await this.#o.store.listWebhooks()).map(webhookView)
  }

  /** Admin of every node; audited (target: the new id, message: the URL's origin only). */
  create(input: WebhookInput, actor: Actor): Promise<WebhookPayload> {
    return this.#o.audit.runMutation(
      { action: 'createWebhook', actor, requires: 'admin', node: null, target: null, dryRun: false },
      async (draft): Promise<WebhookPayload> => {
        requireAllNodes(actor)
        const box = this.#o.box
        if (!box) {
          throw new ServiceError(
            'VALIDATION_FAILED',
            'webhooks are off: this service has no key to seal their secrets with; set WEBHOOK_SECRET_KEY or WEBHOOK_SECRET_KEY_FILE (32 bytes, e.g. `openssl rand -hex 32`) and restart it',
            ['secret'],
          )
        }
        const fields = validateInput(input)
        const turn = this.#createTurn.then(async () => {
          const existing = await this.#o.store.listWebhooks()
          if (existing.length >= this.#settings.maxWebhooks) {
            throw new ServiceError('VALIDATION_FAILED', `there are ${existing.length} webhooks already, the most this service keeps (${this.#settings.maxWebhooks}); delete one first`)
          }
          const record: WebhookRecord = {
            id: `wh_${randomBytes(8).toString('hex')}`,
            url: fields.url.href,
            types: fields.types,
            nodes: fields.nodes,
            sealedSecret: box.seal(fields.secret),
            createdAt: this.#o.clock().toISOString(),
            createdBy: actor.name,
            lastDeliveryAt: null,
            lastResult: null,
            failedDeliveries: 0,
          }
          draft.target = record.id
          draft.message = `posts to ${fields.url.origin}`
          await this.#o.store.createWebhook(record)
          this.#forgetList()
          this.#o.log.info({ webhook: record.id, origin: fields.url.origin, types: record.types, nodes: record.nodes }, `webhook ${record.id} created, posting to ${fields.url.origin}`)
          return { webhook: webhookView(record), userErrors: [] }
        })
        this.#createTurn = turn.catch(() => undefined)
        return turn
      },
      (userErrors): WebhookPayload => ({ webhook: null, userErrors }),
    )
  }

  /** Admin of every node; audited. NOT_FOUND (field id) for an unknown id. Deliveries to it in this process stop at once. */
  delete(id: string, actor: Actor): Promise<WebhookRemoval> {
    return this.#o.audit.runMutation(
      { action: 'deleteWebhook', actor, requires: 'admin', node: null, target: id, dryRun: false },
      async (draft): Promise<WebhookRemoval> => {
        requireAllNodes(actor)
        const existing = (await this.#o.store.listWebhooks()).find((w) => w.id === id)
        if (!existing || !(await this.#o.store.deleteWebhook(id))) {
          throw new ServiceError('NOT_FOUND', `there is no webhook ${quoteInput(id)} (see the webhooks query)`, ['id'])
        }
        this.#forgetList()
        this.#dropLane(id)
        const origin = originOf(existing.url)
        draft.message = `posted to ${origin}`
        this.#o.log.info({ webhook: id, origin }, `webhook ${id} deleted`)
        return { removed: true, userErrors: [] }
      },
      (userErrors): WebhookRemoval => ({ removed: false, userErrors }),
    )
  }

  // ------------------------------------------------------------ delivery

  /**
   * Queues the events for every webhook they match; returns at once. Never
   * throws and never waits for the store or the network.
   */
  publish(events: readonly EventRecord[]): void {
    try {
      if (this.#closed || events.length === 0) return
      for (const event of events) {
        if (this.#intake.length < MAX_INTAKE) this.#intake.push(event)
        else this.#intakeDropped++
      }
      if (this.#intakeDropped > 0) this.#logIntakeDrops()
      if (!this.#pumping) {
        this.#pumping = true
        void this.#pump()
      }
    } catch (err) {
      this.#o.log.error({ err }, 'webhooks: could not queue events')
    }
  }

  /** Resolves once nothing is queued, waiting, in flight or being recorded (tests, draining). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  /** Stops every timer, aborts the requests in flight and waits for them to end; publish does nothing afterwards. */
  async close(): Promise<void> {
    this.#closed = true
    this.#intake.length = 0
    if (this.#pumpWait) {
      clearTimeout(this.#pumpWait.timer)
      this.#pumpWait.resolve()
    }
    for (const id of [...this.#lanes.keys()]) this.#dropLane(id)
    while (this.#running.size > 0) await Promise.allSettled([...this.#running])
    this.#checkIdle()
  }

  async #pump(): Promise<void> {
    try {
      while (this.#intake.length > 0 && !this.#closed) {
        let targets: Target[]
        try {
          targets = await this.#targets()
        } catch (err) {
          this.#o.log.error({ err: errorText(err) }, `webhooks: cannot read the webhook list; ${this.#intake.length} events wait for it`)
          await this.#pause(LIST_RETRY_MS)
          continue
        }
        if (this.#closed) return
        const events = this.#intake.splice(0)
        this.#syncLanes(targets)
        for (const event of events) this.#route(event, targets)
      }
    } catch (err) {
      this.#o.log.error({ err }, 'webhooks: delivery stopped unexpectedly')
      this.#intake.length = 0
    } finally {
      this.#pumping = false
      this.#checkIdle()
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pumpWait = null
        resolve()
      }, ms)
      timer.unref()
      this.#pumpWait = { timer, resolve }
    })
  }

  /** The webhooks, from the cache while it is young enough. A failed read falls back on the last list, if any. */
  async #targets(): Promise<Target[]> {
    const cached = this.#cache
    if (cached && performance.now() - cached.readAt < this.#settings.cacheMs) return cached.targets
    for (;;) {
      const generation = this.#generation
      let records: WebhookRecord[]
      try {
        records = await this.#o.store.listWebhooks()
      } catch (err) {
        if (!cached) throw err
        this.#o.log.warn({ err: errorText(err) }, 'webhooks: cannot read the webhook list; using the last one read')
        return cached.targets
      }
      if (generation !== this.#generation) continue // a create or delete here meanwhile: read again
      const targets = records.map((r) => this.#target(r))
      this.#cache = { readAt: performance.now(), targets }
      return targets
    }
  }

  #target(record: WebhookRecord): Target {
    let secret: string | null = null
    let problem: string | null = null
    if (!this.#o.box) problem = 'not sent: no WEBHOOK_SECRET_KEY to open the secret with'
    else {
      try {
        secret = this.#o.box.open(record.sealedSecret)
      } catch {
        problem = 'not sent: the secret does not open with this WEBHOOK_SECRET_KEY'
      }
    }
    return {
      id: record.id,
      href: record.url,
      origin: originOf(record.url),
      types: record.types.length > 0 ? new Set(record.types) : null,
      nodes: record.nodes,
      secret,
      problem,
    }
  }

  /** The next delivery reads the list again (the old one stays only as the fallback for a failed read). */
  #forgetList(): void {
    this.#generation++
    if (this.#cache) this.#cache = { ...this.#cache, readAt: -Infinity }
  }

  /** Lanes of webhooks no longer stored (deleted by another instance) stop. */
  #syncLanes(targets: Target[]): void {
    const ids = new Set(targets.map((t) => t.id))
    for (const id of [...this.#lanes.keys()]) if (!ids.has(id)) this.#dropLane(id)
  }

  #route(event: EventRecord, targets: Target[]): void {
    let body: Buffer | null = null
    for (const target of targets) {
      if (target.types && !target.types.has(event.type)) continue
      if (target.nodes.length > 0 && !matchesNodeGlobs(target.nodes, event.node)) continue
      body ??= Buffer.from(JSON.stringify(eventBody(event)), 'utf8')
      this.#enqueue(target, event, body)
    }
  }

  #enqueue(target: Target, event: EventRecord, body: Buffer): void {
    let lane = this.#lanes.get(target.id)
    if (!lane) {
      lane = { target, ready: [], waiting: new Map(), inFlight: 0, controller: new AbortController(), notices: new Map() }
      this.#lanes.set(target.id, lane)
    }
    lane.target = target
    const deliveryId = `${event.id}-${target.id}`
    if (target.secret === null) {
      this.#giveUpAtOnce(lane, target.problem ?? 'not sent', 'cannot sign')
      return
    }
    const pending = lane.ready.length + lane.waiting.size + lane.inFlight
    if (pending >= this.#settings.maxPendingPerWebhook) {
      this.#giveUpAtOnce(lane, `not sent: ${pending} deliveries were pending`, 'queue full')
      return
    }
    const signature = `sha256=${createHmac('sha256', target.secret).update(body).digest('hex')}`
    lane.ready.push({ seq: this.#seq++, id: deliveryId, type: event.type, body, signature, attempts: 0 })
    this.#drain(lane)
  }

  /** A delivery given up before any attempt: counted on the webhook, and logged once a minute per webhook and kind. */
  #giveUpAtOnce(lane: Lane, result: string, kind: string): void {
    this.#record(lane.target.id, result, true)
    const now = performance.now()
    const notice = lane.notices.get(kind) ?? { loggedAt: -Infinity, since: 0 }
    notice.since++
    if (now - notice.loggedAt >= LOG_EVERY_MS) {
      this.#o.log.warn(
        { webhook: lane.target.id, origin: lane.target.origin, given_up: notice.since },
        `webhook ${lane.target.id}: ${notice.since} deliveries given up without sending (${result})`,
      )
      notice.loggedAt = now
      notice.since = 0
    }
    lane.notices.set(kind, notice)
  }

  #drain(lane: Lane): void {
    while (lane.inFlight < this.#settings.maxInFlightPerWebhook && lane.ready.length > 0 && !this.#closed) {
      const delivery = lane.ready.shift() as Delivery
      lane.inFlight++
      this.#track(this.#attempt(lane, delivery))
    }
  }

  async #attempt(lane: Lane, delivery: Delivery): Promise<void> {
    delivery.attempts++
    const outcome = await this.#post(lane, delivery)
    lane.inFlight--
    if (this.#lanes.get(lane.target.id) !== lane || outcome === 'aborted') {
      this.#checkIdle()
      return // deleted, or closing: nothing more to do or record
    }
    const { ok, result } = outcome
    if (ok || delivery.attempts >= this.#settings.maxAttempts) {
      this.#record(lane.target.id, result, !ok)
      if (!ok) {
        this.#o.log.warn(
          { webhook: lane.target.id, origin: lane.target.origin, delivery: delivery.id, attempts: delivery.attempts, result },
          `webhook ${lane.target.id}: delivery ${delivery.id} given up after ${delivery.attempts} attempts (${result})`,
        )
      }
    } else {
      this.#o.log.debug({ webhook: lane.target.id, origin: lane.target.origin, delivery: delivery.id, attempt: delivery.attempts, result }, 'webhook attempt failed; will retry')
      const base = Math.min(this.#settings.firstRetryMs * 2 ** (delivery.attempts - 1), MAX_RETRY_DELAY_MS)
      const timer = setTimeout(() => {
        lane.waiting.delete(delivery)
        if (this.#lanes.get(lane.target.id) !== lane) return
        insertBySeq(lane.ready, delivery)
        this.#drain(lane)
      }, base * (1 + RETRY_JITTER * Math.random()))
      timer.unref()
      lane.waiting.set(delivery, timer)
    }
    this.#drain(lane)
    this.#checkIdle()
  }

  async #post(lane: Lane, delivery: Delivery): Promise<{ ok: boolean; result: string } | 'aborted'> {
    // One controller per attempt, aborted by the timeout or by the lane (delete, close); both let go of it afterwards.
    const attempt = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      attempt.abort()
    }, this.#settings.timeoutMs)
    const onLaneAbort = () => attempt.abort()
    lane.controller.signal.addEventListener('abort', onLaneAbort, { once: true })
    try {
      const res = await this.#fetch(lane.target.href, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': USER_AGENT,
          'X-Staticpod-Event': delivery.type,
          'X-Staticpod-Delivery': delivery.id,
          'X-Staticpod-Signature': delivery.signature,
        },
        body: delivery.body,
        redirect: 'manual',
        signal: attempt.signal,
      })
      // The answer's body is not read: the status is all a delivery needs.
      await res.body?.cancel().catch(() => undefined)
      if (res.type === 'opaqueredirect' || res.status === 0) return { ok: false, result: 'redirect (not followed)' }
      return { ok: res.status >= 200 && res.status < 300, result: String(res.status) }
    } catch (err) {
      if (lane.controller.signal.aborted) return 'aborted'
      if (timedOut) return { ok: false, result: `timeout: no answer within ${this.#settings.timeoutMs} ms` }
      return { ok: false, result: networkErrorText(err, lane.target.href) }
    } finally {
      clearTimeout(timer)
      lane.controller.signal.removeEventListener('abort', onLaneAbort)
    }
  }

  #record(id: string, result: string, gaveUp: boolean): void {
    const write = this.#o.store
      .recordWebhookDelivery(id, { at: this.#o.clock().toISOString(), result: bounded(result), gaveUp })
      .catch((err: unknown) => this.#o.log.error({ webhook: id, err: errorText(err) }, `webhook ${id}: cannot record a delivery's outcome`))
    this.#track(write)
  }

  #track(work: Promise<void>): void {
    const tracked = work
      .catch((err: unknown) => this.#o.log.error({ err }, 'webhooks: delivery failed unexpectedly'))
      .finally(() => {
        this.#running.delete(tracked)
        this.#checkIdle()
      })
    this.#running.add(tracked)
  }

  #dropLane(id: string): void {
    const lane = this.#lanes.get(id)
    if (!lane) return
    this.#lanes.delete(id)
    for (const timer of lane.waiting.values()) clearTimeout(timer)
    lane.waiting.clear()
    lane.ready.length = 0
    lane.controller.abort()
    this.#checkIdle()
  }

  #logIntakeDrops(): void {
    const now = performance.now()
    if (now - this.#intakeDropLoggedAt < LOG_EVERY_MS) return
    this.#o.log.error(`webhooks: ${this.#intakeDropped} events dropped: ${MAX_INTAKE} were already waiting for the webhook list (the store does not answer)`)
    this.#intakeDropLoggedAt = now
    this.#intakeDropped = 0
  }

  #isIdle(): boolean {
    if (this.#closed) return this.#running.size === 0
    if (this.#pumping || this.#intake.length > 0 || this.#running.size > 0) return false
    for (const lane of this.#lanes.values()) if (lane.ready.length > 0 || lane.waiting.size > 0 || lane.inFlight > 0) return false
    return true
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}

// ------------------------------------------------------------ validation

interface WebhookFields {
  url: URL
  types: EventType[]
  nodes: string[]
  secret: string
}

/** Every problem of the input at once, each naming its field (['url'], ['nodes', '2'] ...). */
function validateInput(input: WebhookInput): WebhookFields {
  const problems: ServiceError[] = []
  const problem = (message: string, ...field: Array<string | number>) => problems.push(new ServiceError('VALIDATION_FAILED', message, field))

  // Messages never quote the URL: it can carry a secret of its own.
  let url: URL | null = null
  const rawUrl: unknown = input.url
  if (typeof rawUrl !== 'string' || rawUrl.length === 0) problem('url: required', 'url')
  else if (rawUrl.length > MAX_URL) problem(`url: at most ${MAX_URL} characters (this one has ${rawUrl.length})`, 'url')
  else {
    try {
      url = new URL(rawUrl)
    } catch {
      problem('url: not an absolute URL (expected https://host/path)', 'url')
    }
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') {
      problem(`url: must be http: or https:, not ${quoteInput(url.protocol, 16)}`, 'url')
      url = null
    } else if (url && (url.username !== '' || url.password !== '')) {
      problem('url: must not carry a user name or password (user:pass@); receivers check the X-Staticpod-Signature header instead', 'url')
      url = null
    } else if (url && url.hostname === '') {
      problem('url: needs a host', 'url')
      url = null
    } else if (url && url.href.length > MAX_URL) {
      problem(`url: at most ${MAX_URL} characters once normalised (this one has ${url.href.length})`, 'url')
      url = null
    }
  }

  const types: EventType[] = []
  const rawTypes: unknown = input.types ?? []
  if (!Array.isArray(rawTypes)) problem('types: must be a list of event types', 'types')
  else {
    rawTypes.forEach((t: unknown, i) => {
      if (typeof t !== 'string' || !(EVENT_TYPES as readonly string[]).includes(t)) {
        problem(`types: ${typeof t === 'string' ? quoteInput(t, 40) : 'that'} is not an event type (one of ${EVENT_TYPES.join(', ')})`, 'types', i)
      } else if (!types.includes(t as EventType)) types.push(t as EventType)
    })
  }

  const nodes: string[] = []
  const rawNodes: unknown = input.nodes ?? []
  if (!Array.isArray(rawNodes)) problem('nodes: must be a list of node name globs', 'nodes')
  else if (rawNodes.length > MAX_NODE_GLOBS) problem(`nodes: at most ${MAX_NODE_GLOBS} globs (${rawNodes.length} given)`, 'nodes')
  else {
    rawNodes.forEach((g: unknown, i) => {
      if (typeof g !== 'string' || g.length === 0 || g.length > MAX_GLOB || !NODE_GLOB.test(g)) {
        problem(`nodes: ${typeof g === 'string' ? quoteInput(g, 40) : 'that'} is not a node name glob (1 to ${MAX_GLOB} of A-Z a-z 0-9 . - _, and * or ?)`, 'nodes', i)
      } else if (!nodes.includes(g)) nodes.push(g)
    })
  }

  // The secret is never quoted, not even its length's neighbourhood.
  const secret: unknown = input.secret
  if (typeof secret !== 'string' || secret.length < MIN_SECRET || secret.length > MAX_SECRET) {
    problem(`secret: ${MIN_SECRET} to ${MAX_SECRET} characters`, 'secret')
  }

  if (problems.length > 0 || !url || typeof secret !== 'string') throw new ValidationErrors(problems)
  return { url, types, nodes, secret }
}

function requireAllNodes(actor: Actor): void {
  if (actor.nodes !== null) {
    throw new ServiceError('FORBIDDEN', `${actor.name} is limited to some nodes; webhooks receive events of every node they match, so only an admin for all nodes may see or change them`)
  }
}

// ------------------------------------------------------------ helpers

function webhookView(r: WebhookRecord): WebhookView {
  return {
    id: r.id,
    url: r.url,
    types: [...r.types],
    nodes: [...r.nodes],
    createdAt: r.createdAt,
    lastDeliveryAt: r.lastDeliveryAt,
    lastResult: r.lastResult,
    failedDeliveries: r.failedDeliveries,
  }
}

/** The body of a delivery: the event as the contract's Event has it, and one line of text for chat tools. */
function eventBody(e: EventRecord): Record<string, unknown> {
  return {
    id: e.id,
    at: e.at,
    type: e.type,
    node: e.node,
    namespace: e.namespace,
    name: e.name,
    message: e.message,
    fromHash: e.fromHash,
    toHash: e.toHash,
    actor: e.actor,
    text: eventText(e),
  }
}

/** What of a URL may be logged: scheme, host and port. */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(invalid URL)'
  }
}

/** A failed request's cause in a few words, without the URL's path or query (they may hold a secret). */
function networkErrorText(err: unknown, href: string): string {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err
  let text = errorText(cause)
  const code = (cause as { code?: unknown } | null)?.code
  if (typeof code === 'string' && !text.includes(code)) text = `${code}: ${text}`
  let pathAndQuery = ''
  try {
    const url = new URL(href)
    pathAndQuery = `${url.pathname}${url.search}`
  } catch {
    // not a URL: only the whole of it can be taken out
  }
  for (const secretPart of [href, pathAndQuery]) {
    if (secretPart.length > 1) text = text.split(secretPart).join('…')
  }
  return bounded(`network error: ${text}`)
}

function bounded(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim()
  return oneLine.length <= MAX_RESULT ? oneLine : `${oneLine.slice(0, MAX_RESULT - 1)}…`
}

function insertBySeq(list: Delivery[], delivery: Delivery): void {
  let i = list.length
  while (i > 0 && (list[i - 1] as Delivery).seq > delivery.seq) i--
  list.splice(i, 0, delivery)
}
