// WebhookService: the records and their rules, and delivery to real HTTP
// receivers on 127.0.0.1 with a real SQLite store (short timings through the
// options).

import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pino from 'pino'
import type { EventRecord, EventType } from '../../src/domain.ts'
import { eventText } from '../../src/events/text.ts'
import type { Actor } from '../../src/services/actor.ts'
import { AuditService } from '../../src/services/audit.ts'
import { SecretBox } from '../../src/services/secret-box.ts'
import { WebhookService, type WebhookInput, type WebhookServiceOptions, type WebhookView } from '../../src/services/webhooks.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'
import type { Store } from '../../src/store/store.ts'

const admin: Actor = { name: 'alice', role: 'admin', nodes: null }
const SECRET = 'hunter2-webhook-signing-secret'

// ------------------------------------------------------------ harness

interface Received {
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
  at: number
  /** Set when the client went away before an answer. */
  aborted: boolean
}

type Answer = number | 'hang' | { status: number; headers: Record<string, string> }

interface Receiver {
  origin: string
  /** origin + /hook. */
  url: string
  requests: Received[]
  close(): Promise<void>
}

/** An HTTP server on 127.0.0.1 answering its n-th request (from 0) with answer(n). */
async function receiver(t: TestContext, answer: (n: number) => Answer = () => 200): Promise<Receiver> {
  const requests: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const received: Received = { url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: performance.now(), aborted: false }
      const a = answer(requests.length)
      requests.push(received)
      res.on('close', () => {
        if (!res.writableFinished) received.aborted = true
      })
      if (a === 'hang') return
      const { status, headers } = typeof a === 'number' ? { status: a, headers: {} } : a
      res.writeHead(status, headers).end('answer body')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.after(close)
  return { origin, url: `${origin}/hook`, requests, close }
}

interface Harness {
  svc: WebhookService
  store: Store
  dbPath: string
  key: Buffer
  /** Every log line (debug and up), as written. */
  lines: string[]
  /** Another WebhookService over the same store (a second instance). */
  another(opts?: Partial<WebhookServiceOptions>): WebhookService
}

async function setup(t: TestContext, opts: Partial<WebhookServiceOptions> = {}, wrapStore?: (s: Store) => Store): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'staticpod-webhooks-'))
  const dbPath = join(dir, 'store.db')
  const sqlite = SqliteStore.open(dbPath)
  const store = wrapStore ? wrapStore(sqlite) : sqlite
  const lines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) })
  const clock = () => new Date()
  const audit = new AuditService(store, clock, log)
  const key = randomBytes(32)
  const services: WebhookService[] = []
  const make = (o: Partial<WebhookServiceOptions> = {}) => {
    const svc = new WebhookService({ store, audit, clock, log, box: new SecretBox(key), firstRetryMs: 20, timeoutMs: 300, ...opts, ...o })
    services.push(svc)
    return svc
  }
  const svc = make()
  t.after(async () => {
    for (const s of services) await s.close()
    await sqlite.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { svc, store, dbPath, key, lines, another: make }
}

async function create(svc: WebhookService, input: Partial<WebhookInput> & { url: string }, actor = admin): Promise<WebhookView> {
  const { webhook, userErrors } = await svc.create({ secret: SECRET, ...input }, actor)
  assert.deepEqual(userErrors, [])
  assert.ok(webhook, 'created')
  return webhook
}

let nextEventId = 1
function event(over: Partial<EventRecord> = {}): EventRecord {
  return {
    id: String(nextEventId++),
    at: new Date().toISOString(),
    type: 'STATIC_POD_CHANGED',
    node: 'cp-1',
    namespace: 'kube-system',
    name: 'kube-apiserver',
    message: 'manifest changed',
    fromHash: 'sha256:aaaa',
    toHash: 'sha256:bbbb',
    actor: null,
    ...over,
  }
}

async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = performance.now() + ms
  while (!(await check())) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`)
    await delay(5)
  }
}

async function webhookNamed(svc: WebhookService, id: string): Promise<WebhookView> {
  const found = (await svc.list(admin)).find((w) => w.id === id)
  assert.ok(found, `webhook ${id} is listed`)
  return found
}

/** A store method or value, methods bound to the store (for the Proxy stand-ins). */
function bound(store: Store, prop: string | symbol): unknown {
  const value = Reflect.get(store, prop) as unknown
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(store) : value
}

const sign = (body: Buffer, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
const eventIdsOf = (r: Receiver) => r.requests.map((q) => (JSON.parse(q.body.toString('utf8')) as { id: string }).id)

// ------------------------------------------------------------ delivery

test('500 three times then 200: delivered on the 4th attempt, one delivery id, signed body, backoff doubling; recorded as 200', async (t) => {
  const h = await setup(t, { maxAttempts: 8, firstRetryMs: 30 })
  const r = await receiver(t, (n) => (n < 3 ? 500 : 200))
  const wh = await create(h.svc, { url: r.url })
  const ev = event({ actor: 'bob', message: 'changed by bob' })
  h.svc.publish([ev])
  await within(h.svc.idle(), 5000, 'idle')

  assert.equal(r.requests.length, 4)
  const deliveryIds = new Set(r.requests.map((q) => q.headers['x-staticpod-delivery']))
  assert.deepEqual([...deliveryIds], [`${ev.id}-${wh.id}`])
  for (const q of r.requests) {
    assert.equal(q.url, '/hook')
    assert.equal(q.headers['content-type'], 'application/json')
    assert.equal(q.headers['user-agent'], 'staticpod-api')
    assert.equal(q.headers['x-staticpod-event'], 'STATIC_POD_CHANGED')
    assert.equal(q.headers['x-staticpod-signature'], sign(q.body))
    assert.notEqual(q.headers['x-staticpod-signature'], sign(q.body, 'another-secret'))
    assert.deepEqual(JSON.parse(q.body.toString('utf8')), { ...ev, text: eventText(ev) })
  }
  assert.ok(r.requests.every((q) => q.body.equals(r.requests[0]!.body)), 'every attempt posts the same bytes')
  const gaps = r.requests.slice(1).map((q, i) => q.at - r.requests[i]!.at)
  gaps.forEach((gap, i) => assert.ok(gap >= 30 * 2 ** i - 3, `retry ${i + 1} waited ${gap} ms, at least ${30 * 2 ** i}`))

  const view = await webhookNamed(h.svc, wh.id)
  assert.equal(view.lastResult, '200')
  assert.equal(view.failedDeliveries, 0)
  assert.ok(view.lastDeliveryAt !== null && Date.parse(view.lastDeliveryAt) >= Date.parse(ev.at), 'lastDeliveryAt is set, after the event')
})

test('a receiver that never answers delays no other webhook (nor publish), and close() aborts it', async (t) => {
  const h = await setup(t, { timeoutMs: 10_000 })
  const dead = await receiver(t, () => 'hang')
  const live = await receiver(t)
  await create(h.svc, { url: dead.url })
  const liveHook = await create(h.svc, { url: live.url })
  const events = Array.from({ length: 6 }, () => event())
  const started = performance.now()
  for (const ev of events) h.svc.publish([ev])
  assert.ok(performance.now() - started < 50, 'publish returns at once')

  await until('the live receiver has every event', () => live.requests.length === 6, 1500)
  assert.deepEqual(eventIdsOf(live).sort(), events.map((e) => e.id).sort())
  await until('the live webhook records its deliveries', async () => (await webhookNamed(h.svc, liveHook.id)).lastResult === '200', 1500)
  // The dead one holds at most 4 requests open (the rest wait their turn) and has answered none.
  await until('the dead receiver holds 4 requests', () => dead.requests.length === 4, 1500)
  assert.ok(dead.requests.every((q) => !q.aborted), 'still open, not given up')

  const closing = performance.now()
  await within(h.svc.close(), 1000, 'close')
  assert.ok(performance.now() - closing < 1000, 'close does not wait for the hanging receiver')
  await until('the hanging requests are aborted', () => dead.requests.every((q) => q.aborted), 1000)
  assert.equal(dead.requests.length, 4, 'nothing more is sent after close')
})

test('a 302 is not followed (the other server gets nothing) and counts as a failed attempt', async (t) => {
  const h = await setup(t, { maxAttempts: 2 })
  const elsewhere = await receiver(t)
  const redirecting = await receiver(t, () => ({ status: 302, headers: { Location: elsewhere.url } }))
  const wh = await create(h.svc, { url: redirecting.url })
  h.svc.publish([event()])
  await within(h.svc.idle(), 3000, 'idle')
  assert.equal(redirecting.requests.length, 2, 'retried, as any non-2xx answer')
  assert.equal(elsewhere.requests.length, 0)
  const view = await webhookNamed(h.svc, wh.id)
  assert.equal(view.lastResult, '302')
  assert.equal(view.failedDeliveries, 1)
})

test('given up after maxAttempts: failedDeliveries counts it; network errors and timeouts are results too', async (t) => {
  const h = await setup(t, { maxAttempts: 3, timeoutMs: 150 })
  const failing = await receiver(t, () => 500)
  const slow = await receiver(t, () => 'hang')
  const gone = await receiver(t)
  await gone.close()
  const [w500, wSlow, wGone] = [await create(h.svc, { url: failing.url }), await create(h.svc, { url: slow.url }), await create(h.svc, { url: gone.url })]
  h.svc.publish([event()])
  await within(h.svc.idle(), 5000, 'idle')
  assert.equal(failing.requests.length, 3, 'exactly maxAttempts attempts')
  assert.equal(slow.requests.length, 3)
  const views = await h.svc.list(admin)
  const byId = (id: string) => views.find((v) => v.id === id)!
  assert.deepEqual([byId(w500.id).lastResult, byId(w500.id).failedDeliveries], ['500', 1])
  assert.deepEqual([byId(wSlow.id).lastResult, byId(wSlow.id).failedDeliveries], ['timeout: no answer within 150 ms', 1])
  assert.match(byId(wGone.id).lastResult ?? '', /^network error: .*ECONNREFUSED/)
  assert.ok((byId(wGone.id).lastResult ?? '').length <= 200, 'a short result')
  assert.equal(byId(wGone.id).failedDeliveries, 1)

  h.svc.publish([event()])
  await within(h.svc.idle(), 5000, 'idle')
  assert.equal((await webhookNamed(h.svc, w500.id)).failedDeliveries, 2)
  assert.ok(h.lines.some((l) => l.includes(`webhook ${w500.id}: delivery`) && l.includes('given up after 3 attempts (500)')), 'giving up is logged')
})

test('types and node globs filter what a webhook gets; empty means all', async (t) => {
  const h = await setup(t, { maxInFlightPerWebhook: 1 })
  const [r1, r2, r3, r4] = await Promise.all([receiver(t), receiver(t), receiver(t), receiver(t)])
  await create(h.svc, { url: r1!.url, types: ['POD_READY'] })
  await create(h.svc, { url: r2!.url, nodes: ['cp-*'] })
  await create(h.svc, { url: r3!.url, types: ['CRASH_LOOP', 'POD_READY'], nodes: ['worker-?', 'etcd-1'] })
  await create(h.svc, { url: r4!.url, types: [], nodes: [] })
  const evs = [
    event({ type: 'POD_READY', node: 'cp-1' }),
    event({ type: 'CRASH_LOOP', node: 'worker-1' }),
    event({ type: 'STATIC_POD_CHANGED', node: 'cp-10' }),
    event({ type: 'POD_READY', node: 'worker-12' }),
    event({ type: 'CRASH_LOOP', node: 'etcd-1' }),
    event({ type: 'NODE_UNREACHABLE', node: 'xcp-1' }),
  ]
  h.svc.publish(evs)
  await within(h.svc.idle(), 3000, 'idle')
  const ids = (...i: number[]) => i.map((n) => evs[n]!.id)
  assert.deepEqual(eventIdsOf(r1!), ids(0, 3))
  assert.deepEqual(eventIdsOf(r2!), ids(0, 2))
  assert.deepEqual(eventIdsOf(r3!), ids(1, 4))
  assert.deepEqual(eventIdsOf(r4!), ids(0, 1, 2, 3, 4, 5), 'all of them, in order')
  assert.deepEqual(
    r2!.requests.map((q) => q.headers['x-staticpod-event']),
    ['POD_READY', 'STATIC_POD_CHANGED'],
  )
})

test('one webhook gets its events in the order they were published', async (t) => {
  const h = await setup(t, { maxInFlightPerWebhook: 1 })
  const r = await receiver(t)
  await create(h.svc, { url: r.url })
  const evs = Array.from({ length: 12 }, (_, i) => event({ node: `n-${i}` }))
  h.svc.publish(evs.slice(0, 5))
  h.svc.publish(evs.slice(5))
  await within(h.svc.idle(), 3000, 'idle')
  assert.deepEqual(eventIdsOf(r), evs.map((e) => e.id))
})

test('a full queue: deliveries beyond maxPendingPerWebhook are given up at once, counted, and logged once a minute', async (t) => {
  const h = await setup(t, { maxPendingPerWebhook: 2, timeoutMs: 10_000 })
  const dead = await receiver(t, () => 'hang')
  const wh = await create(h.svc, { url: dead.url })
  h.svc.publish(Array.from({ length: 5 }, () => event()))
  await until('3 deliveries given up', async () => (await webhookNamed(h.svc, wh.id)).failedDeliveries === 3)
  h.svc.publish(Array.from({ length: 3 }, () => event()))
  await until('6 deliveries given up', async () => (await webhookNamed(h.svc, wh.id)).failedDeliveries === 6)
  await until('2 requests open', () => dead.requests.length === 2)
  await delay(50)
  assert.equal(dead.requests.length, 2, 'only the two that fit were sent')
  assert.match((await webhookNamed(h.svc, wh.id)).lastResult ?? '', /^not sent: 2 deliveries were pending/)
  assert.equal(h.lines.filter((l) => l.includes('deliveries given up without sending')).length, 1)
})

test('deleting a webhook stops its retries; NOT_FOUND naming id for an unknown one; audited', async (t) => {
  const h = await setup(t, { maxAttempts: 5, firstRetryMs: 150 })
  const r = await receiver(t, () => 500)
  const wh = await create(h.svc, { url: r.url })
  h.svc.publish([event()])
  await until('the first attempt', () => r.requests.length === 1)
  const removed = await h.svc.delete(wh.id, admin)
  assert.deepEqual(removed, { removed: true, userErrors: [] })
  await within(h.svc.idle(), 500, 'idle right after delete')
  await delay(300)
  assert.equal(r.requests.length, 1, 'no retry after delete')
  assert.deepEqual(await h.svc.list(admin), [])
  h.svc.publish([event()])
  await within(h.svc.idle(), 1000, 'idle')
  assert.equal(r.requests.length, 1, 'a deleted webhook gets no new event')

  const unknown = await h.svc.delete(wh.id, admin)
  assert.equal(unknown.removed, false)
  assert.deepEqual(unknown.userErrors.map((e) => [e.code, e.field]), [['NOT_FOUND', ['id']]])
  const audit = await h.store.listAudit({ limit: 10 })
  assert.deepEqual(
    audit.map((a) => [a.action, a.target, a.result, a.message]).reverse(),
    [
      ['createWebhook', wh.id, 'OK', `posts to ${r.origin}`],
      ['deleteWebhook', wh.id, 'OK', `posted to ${r.origin}`],
      ['deleteWebhook', wh.id, 'NOT_FOUND', unknown.userErrors[0]!.message],
    ],
  )
  assert.ok(audit.every((a) => a.actor === 'alice'), 'the actor is recorded')
})

test("another instance's webhook is seen once the cached list is older than cacheMs; the store is read at most that often", async (t) => {
  let listCalls = 0
  const h = await setup(t, { cacheMs: 300 }, (store) =>
    new Proxy(store, {
      get(target, prop) {
        if (prop === 'listWebhooks') return () => (listCalls++, target.listWebhooks())
        return bound(target, prop)
      },
    }),
  )
  const r = await receiver(t)
  const other = h.another()
  h.svc.publish([event()]) // reads (and caches) the empty list
  await within(h.svc.idle(), 1000, 'idle')
  const callsBefore = listCalls
  await create(other, { url: r.url })
  const early = event()
  for (let i = 0; i < 20; i++) h.svc.publish([i === 0 ? early : event()])
  await within(h.svc.idle(), 1000, 'idle')
  assert.equal(r.requests.length, 0, 'the cached list does not have it yet')
  assert.equal(listCalls - callsBefore, 1, "one read by the other instance's create, none by these publishes")
  await delay(320)
  const late = event()
  h.svc.publish([late])
  await within(h.svc.idle(), 1000, 'idle')
  assert.deepEqual(eventIdsOf(r), [late.id])
})

test('a webhook created here is delivered to at once (the cache is forgotten); publish never throws nor waits for the store', async (t) => {
  let failReads = false
  let hangReads = false
  const h = await setup(t, { cacheMs: 60_000 }, (store) =>
    new Proxy(store, {
      get(target, prop) {
        if (prop === 'listWebhooks') {
          return () => (hangReads ? new Promise(() => undefined) : failReads ? Promise.reject(new Error('store down')) : target.listWebhooks())
        }
        return bound(target, prop)
      },
    }),
  )
  const r = await receiver(t)
  h.svc.publish([event()])
  await within(h.svc.idle(), 1000, 'idle')
  await create(h.svc, { url: r.url })
  const ev = event()
  h.svc.publish([ev])
  await within(h.svc.idle(), 1000, 'idle')
  assert.deepEqual(eventIdsOf(r), [ev.id])

  // A failing read with a list read before: the last list is used (and said so).
  const wh2 = await create(h.svc, { url: r.url, types: ['CRASH_LOOP'] })
  failReads = true
  h.svc.publish([event({ type: 'CRASH_LOOP' })]) // the cache was forgotten by the create: this read fails
  await within(h.svc.idle(), 1000, 'idle')
  assert.ok(h.lines.some((l) => l.includes('cannot read the webhook list; using the last one read')), 'the fallback is logged')
  assert.equal(r.requests.length, 2, 'the old list (without the new webhook) was used')

  // A read that never answers: publish still returns at once and never throws.
  failReads = false
  await h.svc.delete(wh2.id, admin) // forgets the cache again
  hangReads = true
  const started = performance.now()
  assert.doesNotThrow(() => h.svc.publish([event(), event()]))
  assert.ok(performance.now() - started < 20, 'publish returns at once')
  let idle = false
  void h.svc.idle().then(() => (idle = true))
  await delay(50)
  assert.equal(idle, false, 'the events wait for the list')
  await within(h.svc.close(), 1000, 'close while a list read hangs')
  assert.doesNotThrow(() => h.svc.publish([event()]))
})

test('close() stops retry timers: nothing is sent afterwards', async (t) => {
  const h = await setup(t, { maxAttempts: 5, firstRetryMs: 100 })
  const r = await receiver(t, () => 500)
  await create(h.svc, { url: r.url })
  h.svc.publish([event()])
  await until('the first attempt', () => r.requests.length === 1)
  await within(h.svc.close(), 500, 'close')
  await delay(300)
  assert.equal(r.requests.length, 1)
})

// ------------------------------------------------------------ secrets and URLs

test('the secret is in neither the list, the SQLite file, the log nor the audit; the URL only by its origin', async (t) => {
  const h = await setup(t, { maxAttempts: 2 })
  const r = await receiver(t, () => 500)
  const url = `${r.origin}/services/T0001/B0002/pathsecretXYZ?token=querysecretQQQ`
  const wh = await create(h.svc, { url })
  const gone = await receiver(t)
  await gone.close()
  const dead = await create(h.svc, { url: `${gone.origin}/hooks/deadpathsecretABC`, secret: 'another-secret-value' })
  h.svc.publish([event()])
  await within(h.svc.idle(), 3000, 'idle')
  assert.equal(r.requests.length, 2)
  assert.equal(r.requests[0]!.url, '/services/T0001/B0002/pathsecretXYZ?token=querysecretQQQ', 'the whole URL is posted to')
  const refused = await h.svc.create({ url: `${r.origin}/x/pathsecretXYZ`, secret: 'short' }, admin)
  assert.deepEqual(refused.userErrors.map((e) => e.field), [['secret']])
  await h.svc.delete(dead.id, admin)

  const listed = JSON.stringify(await h.svc.list(admin))
  assert.ok(listed.includes('pathsecretXYZ'), 'an admin sees the URL')
  assert.ok(!listed.includes(SECRET) && !listed.toLowerCase().includes('secret"'), listed)

  const files = [h.dbPath, `${h.dbPath}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p))
  assert.ok(files.length > 0, 'the store file exists')
  for (const bytes of files) {
    assert.equal(bytes.indexOf(SECRET), -1, 'the secret is not in the file in clear')
    assert.equal(bytes.indexOf(Buffer.from(SECRET, 'utf16le')), -1)
  }
  const db = new Database(h.dbPath, { readonly: true })
  const row = db.prepare('SELECT sealed_secret FROM webhooks WHERE id = ?').get(wh.id) as { sealed_secret: string }
  db.close()
  assert.match(row.sealed_secret, /^v1\./)
  assert.equal(new SecretBox(h.key).open(row.sealed_secret), SECRET, 'sealed with the service key')

  const log = h.lines.join('\n')
  for (const secret of [SECRET, 'another-secret-value', 'pathsecretXYZ', 'querysecretQQQ', 'deadpathsecretABC', '/services/T0001']) {
    assert.ok(!log.includes(secret), `${secret} is not logged`)
  }
  assert.ok(log.includes(r.origin), 'the origin is')
  assert.ok(h.lines.some((l) => l.includes('will retry')), 'the failed attempts were logged (at debug)')
  const audit = JSON.stringify(await h.store.listAudit({ limit: 20 }))
  assert.ok(!audit.includes('pathsecretXYZ') && !audit.includes(SECRET) && !audit.includes('deadpathsecretABC'), 'neither the secret nor the path is audited')
  assert.ok(audit.includes(`posts to ${r.origin}`), 'the origin is audited')
  const deadView = await h.store.listWebhooks()
  assert.equal(deadView.length, 1)
  assert.equal(deadView[0]!.id, wh.id)
})

test('network errors are recorded without the path', async (t) => {
  const h = await setup(t, { maxAttempts: 1 })
  const gone = await receiver(t)
  await gone.close()
  const wh = await create(h.svc, { url: `${gone.origin}/hooks/deadpathsecretABC` })
  h.svc.publish([event()])
  await within(h.svc.idle(), 3000, 'idle')
  const { lastResult } = await webhookNamed(h.svc, wh.id)
  assert.match(lastResult ?? '', /^network error: /)
  assert.ok(!(lastResult ?? '').includes('deadpathsecretABC'), 'the path is not in the result')
})

test('viewers, operators and admins limited to some nodes may not create, list or delete webhooks', async (t) => {
  const h = await setup(t)
  const r = await receiver(t)
  const wh = await create(h.svc, { url: r.url })
  const callers: Actor[] = [
    { name: 'vic', role: 'viewer', nodes: null },
    { name: 'otto', role: 'operator', nodes: null },
    { name: 'ada', role: 'admin', nodes: ['cp-*'] },
  ]
  for (const actor of callers) {
    const created = await h.svc.create({ url: r.url, secret: SECRET }, actor)
    assert.equal(created.webhook, null)
    assert.deepEqual(created.userErrors.map((e) => e.code), ['FORBIDDEN'], actor.name)
    await assert.rejects(h.svc.list(actor), { code: 'FORBIDDEN' })
    const deleted = await h.svc.delete(wh.id, actor)
    assert.deepEqual([deleted.removed, deleted.userErrors.map((e) => e.code)], [false, ['FORBIDDEN']])
  }
  assert.deepEqual((await h.svc.list(admin)).map((w) => w.id), [wh.id])
  const audit = await h.store.listAudit({ limit: 20 })
  assert.equal(audit.filter((a) => a.result === 'FORBIDDEN').length, 6)
})

test('URL validation: only http(s) with a host, no user:pass@, at most 2048 characters; the URL is never quoted back', async (t) => {
  const h = await setup(t)
  const bad = [
    'ftp://example.com/hook',
    'javascript:alert(1)',
    'https://alice:s3cretpw@example.com/hook',
    'https://:s3cretpw@example.com/hook',
    'https://user@example.com/hook',
    `https://example.com/${'a'.repeat(2048)}`,
    'not a url at all',
    '/relative/hook',
    '',
    'http://',
    'file:///etc/passwd',
    'mailto:ops@example.com',
    'data:text/plain,hello',
  ]
  for (const url of bad) {
    const { webhook, userErrors } = await h.svc.create({ url, secret: SECRET }, admin)
    assert.equal(webhook, null, url)
    assert.deepEqual(userErrors.map((e) => [e.code, e.field]), [['VALIDATION_FAILED', ['url']]], url)
    if (url.length > 12) assert.ok(!userErrors[0]!.message.includes(url.slice(8)), userErrors[0]!.message)
    assert.ok(!userErrors[0]!.message.includes('s3cretpw'), 'the password is not quoted back')
  }
  assert.deepEqual(await h.svc.list(admin), [])
  // The limits themselves are allowed.
  const longest = `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`
  assert.equal(longest.length, 2048)
  for (const url of ['http://example.com', longest, 'https://[::1]:8443/x?y=1']) {
    const { userErrors } = await h.svc.create({ url, secret: SECRET }, admin)
    assert.deepEqual(userErrors, [], url)
  }
  const views = await h.svc.list(admin)
  assert.deepEqual(views.map((v) => v.url), ['http://example.com/', longest, 'https://[::1]:8443/x?y=1'])
})

test('types, nodes and secret validation; types and globs deduplicated; every problem at once', async (t) => {
  const h = await setup(t)
  const fieldsOf = async (input: Partial<WebhookInput>) =>
    (await h.svc.create({ url: 'https://example.com/hook', secret: SECRET, ...input }, admin)).userErrors.map((e) => e.field)
  assert.deepEqual(await fieldsOf({ types: ['POD_READY', 'NOPE' as EventType] }), [['types', '1']])
  assert.deepEqual(await fieldsOf({ nodes: ['cp-*', 'bad/glob', ''] }), [['nodes', '1'], ['nodes', '2']])
  assert.deepEqual(await fieldsOf({ nodes: ['x'.repeat(254)] }), [['nodes', '0']])
  assert.deepEqual(await fieldsOf({ nodes: Array.from({ length: 65 }, (_, i) => `n${i}`) }), [['nodes']])
  assert.deepEqual(await fieldsOf({ secret: 'short' }), [['secret']])
  assert.deepEqual(await fieldsOf({ secret: 'x'.repeat(1025) }), [['secret']])
  assert.deepEqual(await fieldsOf({ url: 'ftp://x', secret: '', nodes: ['a b'] }), [['url'], ['nodes', '0'], ['secret']])
  const short = await h.svc.create({ url: 'https://example.com/hook', secret: 'tiny' }, admin)
  assert.ok(!short.userErrors[0]!.message.includes('tiny'), 'the secret is not quoted back')
  assert.deepEqual(await h.svc.list(admin), [])

  const ok = await create(h.svc, {
    url: 'https://example.com/hook',
    types: ['POD_READY', 'CRASH_LOOP', 'POD_READY'],
    nodes: ['cp-*', 'worker-?', 'cp-*', 'x'.repeat(253)],
    secret: 'x'.repeat(8),
  })
  assert.deepEqual(ok.types, ['POD_READY', 'CRASH_LOOP'])
  assert.deepEqual(ok.nodes, ['cp-*', 'worker-?', 'x'.repeat(253)])
  assert.match(ok.id, /^wh_[0-9a-f]{16}$/)
  assert.deepEqual(Object.keys(ok).sort(), ['createdAt', 'failedDeliveries', 'id', 'lastDeliveryAt', 'lastResult', 'nodes', 'types', 'url'])
  assert.deepEqual([ok.lastDeliveryAt, ok.lastResult, ok.failedDeliveries], [null, null, 0])
  assert.deepEqual(await create(h.svc, { url: 'https://example.com/all', types: null, nodes: null }).then((w) => [w.types, w.nodes]), [[], []])
})

test('at most maxWebhooks webhooks, also when created at once', async (t) => {
  const h = await setup(t, { maxWebhooks: 2 })
  const results = await Promise.all([1, 2, 3].map((i) => h.svc.create({ url: `https://example.com/${i}`, secret: SECRET }, admin)))
  assert.equal(results.filter((r) => r.webhook !== null).length, 2)
  const refused = results.find((r) => r.webhook === null)!
  assert.deepEqual(refused.userErrors.map((e) => e.code), ['VALIDATION_FAILED'])
  assert.match(refused.userErrors[0]!.message, /the most this service keeps \(2\); delete one first/)
  assert.equal((await h.svc.list(admin)).length, 2)
})

test('no key (box null): create refused saying which setting to make, and stored webhooks are not delivered to', async (t) => {
  const h = await setup(t)
  const r = await receiver(t)
  const wh = await create(h.svc, { url: r.url })
  const keyless = h.another({ box: null })
  const { webhook, userErrors } = await keyless.create({ url: r.url, secret: SECRET }, admin)
  assert.equal(webhook, null)
  assert.equal(userErrors.length, 1)
  assert.equal(userErrors[0]!.code, 'VALIDATION_FAILED')
  assert.deepEqual(userErrors[0]!.field, ['secret'])
  assert.match(userErrors[0]!.message, /set WEBHOOK_SECRET_KEY or WEBHOOK_SECRET_KEY_FILE/)
  assert.equal((await keyless.list(admin)).length, 1)

  keyless.publish([event()])
  await within(keyless.idle(), 1000, 'idle')
  assert.equal(r.requests.length, 0, 'nothing is sent unsigned')
  const view = await webhookNamed(keyless, wh.id)
  assert.deepEqual([view.failedDeliveries, view.lastResult], [1, 'not sent: no WEBHOOK_SECRET_KEY to open the secret with'])

  const otherKey = h.another({ box: new SecretBox(randomBytes(32)) })
  otherKey.publish([event()])
  await within(otherKey.idle(), 1000, 'idle')
  assert.equal(r.requests.length, 0)
  const after = await webhookNamed(otherKey, wh.id)
  assert.deepEqual([after.failedDeliveries, after.lastResult], [2, 'not sent: the secret does not open with this WEBHOOK_SECRET_KEY'])
})
