// Watch and push, end to end on the local node: events stored from what the
// service observes, the events query, Subscription.events over a real
// WebSocket (graphql-ws), webhooks posted to real HTTP receivers, rollouts
// streamed, and two instances on one SQLite file.

import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { build, makeTempDir, podYaml, type TestApp } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT, bearer } from '../http/tokens.ts'
import { subscribe } from '../support/subscriber.ts'

const EVENT_FIELDS = 'id at type node namespace name message fromHash toHash actor'

async function appWithTokens(t: TestContext, opts: { nodeName?: string; env?: Record<string, string>; dir?: string } = {}): Promise<TestApp & { port: number; as(token: string, query: string, variables?: Record<string, unknown>): Promise<any> }> {
  const ta = await build(t, {
    nodeName: opts.nodeName,
    dir: opts.dir,
    env: { AUTH_TOKENS: TOKENS_DOCUMENT, OBSERVE_INTERVAL_SECONDS: '0', ...opts.env },
    appOptions: { eventPollMs: 50, webhookFirstRetryMs: 40 },
  })
  await ta.app.listen({ host: '127.0.0.1', port: 0 })
  const port = (ta.app.server.address() as AddressInfo).port
  const as = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const res = await ta.app.inject({ method: 'POST', url: '/graphql', headers: bearer(token), payload: { query, variables } })
    return res.json()
  }
  return { ...ta, port, as }
}

/** What the observer does each round, run by the test (deterministic). */
async function observeRound(ta: TestApp): Promise<void> {
  await ta.app.services.observer.round()
}

interface Delivery {
  headers: IncomingMessage['headers']
  body: string
}

/** A webhook receiver on 127.0.0.1: answers each POST with the next status of `statuses` (then 200), or never. */
async function receiver(t: TestContext, answer: (n: number) => number | 'never' = () => 200): Promise<{ url: string; deliveries: Delivery[]; attempts: Delivery[]; waitFor(n: number, ms?: number): Promise<void> }> {
  const attempts: Delivery[] = []
  const deliveries: Delivery[] = []
  const hanging: ServerResponse[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const got = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      attempts.push(got)
      const status = answer(attempts.length)
      if (status === 'never') {
        hanging.push(res)
        return
      }
      if (status >= 200 && status < 300) deliveries.push(got)
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  return {
    url,
    deliveries,
    attempts,
    async waitFor(n, ms = 10_000) {
      const deadline = Date.now() + ms
      while (deliveries.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} deliveries (got ${deliveries.length}, attempts ${attempts.length})`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
  }
}

const CREATE_WEBHOOK = `mutation($input: WebhookInput!) { createWebhook(input: $input) { webhook { id url types nodes createdAt lastDeliveryAt lastResult failedDeliveries } userErrors { code message field } } }`
const CREATE_POD = `mutation($node: String!, $manifest: String!) { createStaticPod(input: { node: $node, manifest: $manifest }) { staticPod { hash } userErrors { code message } } }`

describe('events from what the service observes', () => {
  it('a hand edit is STATIC_POD_CHANGED (actor null, both hashes) on a live subscription within the interval + 5 s, and a signed POST to a webhook', async (t) => {
    const ta = await appWithTokens(t, { env: { OBSERVE_INTERVAL_SECONDS: '1' } })
    const hook = await receiver(t)
    const secret = 'a-webhook-secret-for-tests'
    const created = await ta.as(TOKENS.admin, CREATE_WEBHOOK, { input: { url: hook.url, secret, types: ['STATIC_POD_CHANGED'] } })
    assert.deepEqual(created.data.createWebhook.userErrors, [])
    assert.equal(created.data.createWebhook.webhook.failedDeliveries, 0)
    assert.ok(!JSON.stringify(created).includes(secret), 'the secret is never returned')

    await writeFile(join(ta.manifests, 'web.yaml'), podYaml('web', 'nginx:1.27'))
    await observeRound(ta) // the baseline: a node's first observation announces nothing
    const before = (await ta.as(TOKENS.admin, `{ staticPod(node: "local", namespace: "default", name: "web") { hash } }`)).data.staticPod.hash

    const sub = subscribe(ta.port, `subscription { events(types: [STATIC_POD_CHANGED]) { ${EVENT_FIELDS} } }`, { init: { Authorization: `Bearer ${TOKENS.viewer}` } })
    t.after(() => sub.close())
    ta.app.services.observer.start()
    await new Promise((r) => setTimeout(r, 300)) // connected and subscribed
    const edited = Date.now()
    await writeFile(join(ta.manifests, 'web.yaml'), podYaml('web', 'nginx:1.28'))
    await sub.waitFor(1, 6_000)
    const took = Date.now() - edited
    assert.ok(took <= 6_000, `seen after ${took} ms`)
    const event = sub.values[0]?.data?.events
    assert.equal(event.type, 'STATIC_POD_CHANGED')
    assert.equal(event.node, 'local')
    assert.equal(event.namespace, 'default')
    assert.equal(event.name, 'web')
    assert.equal(event.actor, null)
    assert.equal(event.fromHash, before)
    assert.match(event.toHash, /^[0-9a-f]{64}$/)
    assert.notEqual(event.toHash, before)
    const metrics = (await ta.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^staticpod_events_total\{type="STATIC_POD_CHANGED"\} 1$/m)
    assert.match(metrics, /^staticpod_subscription_connections 1$/m)

    await hook.waitFor(1)
    const delivery = hook.deliveries[0] as Delivery
    const expected = `sha256=${createHmac('sha256', secret).update(delivery.body).digest('hex')}`
    assert.equal(delivery.headers['x-staticpod-signature'], expected)
    assert.equal(delivery.headers['x-staticpod-event'], 'STATIC_POD_CHANGED')
    assert.match(String(delivery.headers['x-staticpod-delivery']), /\S/)
    assert.match(String(delivery.headers['content-type']), /^application\/json/)
    const body = JSON.parse(delivery.body)
    assert.equal(body.id, event.id)
    assert.equal(body.toHash, event.toHash)
    assert.equal(typeof body.text, 'string')
    assert.match(body.text, /default\/web/)
    assert.doesNotMatch(body.text, /\n/)
    const hooks = (await ta.as(TOKENS.admin, '{ webhooks { lastResult lastDeliveryAt failedDeliveries } }')).data.webhooks
    assert.equal(hooks[0].lastResult, '200')
    assert.ok(hooks[0].lastDeliveryAt, 'lastDeliveryAt is set')
  })

  it('the events query: newest first, paged with before, filtered by node and type', async (t) => {
    const ta = await appWithTokens(t)
    await observeRound(ta)
    for (const image of ['nginx:1.1', 'nginx:1.2', 'nginx:1.3']) {
      await writeFile(join(ta.manifests, 'web.yaml'), podYaml('web', image))
      await observeRound(ta)
    }
    const all = (await ta.as(TOKENS.viewer, `{ events { ${EVENT_FIELDS} } }`)).data.events
    // 1.1 is the first sight of web (ADDED), then two CHANGED.
    assert.deepEqual(all.map((e: { type: string }) => e.type), ['STATIC_POD_CHANGED', 'STATIC_POD_CHANGED', 'STATIC_POD_ADDED'])
    assert.ok(Number(all[0].id) > Number(all[1].id) && Number(all[1].id) > Number(all[2].id), 'newest first')
    const page = (await ta.as(TOKENS.viewer, `{ events(limit: 1, before: "${all[0].id}") { id } }`)).data.events
    assert.deepEqual(page.map((e: { id: string }) => e.id), [all[1].id])
    const added = (await ta.as(TOKENS.viewer, '{ events(types: [STATIC_POD_ADDED]) { type } }')).data.events
    assert.equal(added.length, 1)
    assert.deepEqual((await ta.as(TOKENS.viewer, '{ events(node: "elsewhere") { id } }')).data.events, [])
    const bad = await ta.as(TOKENS.viewer, '{ events(before: "not-an-id") { id } }')
    assert.equal(bad.errors[0].extensions.code, 'VALIDATION_FAILED')
    const tooMany = await ta.as(TOKENS.viewer, '{ events(limit: 100000) { id } }')
    assert.equal(tooMany.errors[0].extensions.code, 'VALIDATION_FAILED')
  })

  it('a write through the service is an event with its actor', async (t) => {
    const ta = await appWithTokens(t)
    await observeRound(ta)
    const created = await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('api') })
    assert.deepEqual(created.data.createStaticPod.userErrors, [])
    const events = (await ta.as(TOKENS.viewer, `{ events { ${EVENT_FIELDS} } }`)).data.events
    assert.equal(events.length, 1, JSON.stringify(events))
    assert.equal(events[0].type, 'STATIC_POD_ADDED')
    assert.equal(events[0].actor, 'ci-operator')
    assert.equal(events[0].toHash, created.data.createStaticPod.staticPod.hash)
    // Observed again: nothing new.
    await observeRound(ta)
    assert.equal((await ta.as(TOKENS.viewer, '{ events { id } }')).data.events.length, 1)
    const deleted = await ta.as(TOKENS.operator, 'mutation { deleteStaticPod(input: { node: "local", namespace: "default", name: "api" }) { userErrors { code } } }')
    assert.deepEqual(deleted.data.deleteStaticPod.userErrors, [])
    const [removed] = (await ta.as(TOKENS.viewer, `{ events(types: [STATIC_POD_REMOVED]) { ${EVENT_FIELDS} } }`)).data.events
    assert.equal(removed.actor, 'ci-operator')
    assert.equal(removed.fromHash, created.data.createStaticPod.staticPod.hash)
  })
})

describe('subscriptions', () => {
  it('a subscriber that disconnects, misses two events and reconnects with after receives exactly those two, in order', async (t) => {
    const ta = await appWithTokens(t)
    await observeRound(ta)
    const query = `subscription($after: ID) { events(after: $after) { ${EVENT_FIELDS} } }`
    const init = { Authorization: `Bearer ${TOKENS.viewer}` }
    const first = subscribe(ta.port, query, { init })
    await new Promise((r) => setTimeout(r, 200))
    await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('one') })
    await first.waitFor(1)
    const seen = first.values[0]?.data?.events
    await first.close()

    await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('two') })
    await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('three') })

    const again = subscribe(ta.port, query, { init, variables: { after: seen.id } })
    t.after(() => again.close())
    await again.waitFor(2)
    await new Promise((r) => setTimeout(r, 400))
    assert.deepEqual(again.values.map((v) => v.data?.events.name), ['two', 'three'])
    assert.ok(Number(again.values[0]?.data?.events.id) < Number(again.values[1]?.data?.events.id), 'in id order')
    // And live from there on.
    await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('four') })
    await again.waitFor(3)
    assert.deepEqual(again.values.map((v) => v.data?.events.name), ['two', 'three', 'four'])
  })

  it("a scoped token's subscription and events query see only its nodes; a viewer cannot create webhooks", async (t) => {
    // The local node is edge-1 (edge-watcher's edge-? glob); cp-9 is an SSH node nobody can reach.
    const ta = await appWithTokens(t, { nodeName: 'edge-1', env: { SSH_CONNECT_TIMEOUT_MS: '500' } })
    const now = new Date().toISOString()
    await ta.app.services.store.createNode({
      name: 'cp-9',
      kind: 'ssh',
      ssh: { host: '127.0.0.1', port: 9, user: 'root', privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', observedHostKeyFingerprint: null },
      staticPodPath: '/etc/kubernetes/manifests',
      staticPodPathFrom: 'given',
      labels: [],
      createdAt: now,
      updatedAt: now,
    })
    const query = `subscription { events { ${EVENT_FIELDS} } }`
    const scoped = subscribe(ta.port, query, { init: { Authorization: `Bearer ${TOKENS.edgeViewer}` } })
    const admin = subscribe(ta.port, query, { init: { Authorization: `Bearer ${TOKENS.admin}` } })
    t.after(() => Promise.all([scoped.close(), admin.close()]))
    await new Promise((r) => setTimeout(r, 200))
    await observeRound(ta) // cp-9: NODE_UNREACHABLE (first sight of a node that cannot be reached)
    await ta.as(TOKENS.admin, CREATE_POD, { node: 'edge-1', manifest: podYaml('web') })
    await admin.waitFor(2)
    await scoped.waitFor(1)
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(admin.values.map((v) => `${v.data?.events.node} ${v.data?.events.type}`).sort(), ['cp-9 NODE_UNREACHABLE', 'edge-1 STATIC_POD_ADDED'])
    assert.deepEqual(scoped.values.map((v) => `${v.data?.events.node} ${v.data?.events.type}`), ['edge-1 STATIC_POD_ADDED'])
    const listed = (await ta.as(TOKENS.edgeViewer, '{ events { node } }')).data.events
    assert.deepEqual(listed.map((e: { node: string }) => e.node), ['edge-1'])
    const forbidden = await ta.as(TOKENS.edgeViewer, '{ events(node: "cp-9") { id } }')
    assert.equal(forbidden.errors[0].extensions.code, 'FORBIDDEN')

    for (const token of [TOKENS.viewer, TOKENS.operator]) {
      const res = await ta.as(token, CREATE_WEBHOOK, { input: { url: 'http://127.0.0.1:9/x', secret: 'long-enough-secret' } })
      assert.equal(res.data.createWebhook.webhook, null)
      assert.equal(res.data.createWebhook.userErrors[0].code, 'FORBIDDEN')
      assert.equal((await ta.as(token, '{ webhooks { id } }')).errors[0].extensions.code, 'FORBIDDEN')
    }
  })

  it('rollout(id) streams a rollout as it progresses and ends with its last state; ROLLOUT_STARTED and ROLLOUT_FINISHED are events', async (t) => {
    const ta = await appWithTokens(t)
    await observeRound(ta)
    // No runtime on the local node: the wait for readiness fails after its timeout, and the rollout with it.
    const applying = ta.as(TOKENS.operator, `mutation($m: String!) { applyStaticPodToNodes(input: { nodes: ["local"], manifest: $m, readyTimeoutSeconds: 2, autoRollback: true }) { rolloutId results { node status } } }`, { m: podYaml('web') })
    let id: string | undefined
    for (let i = 0; i < 100 && !id; i++) {
      id = (await ta.as(TOKENS.viewer, '{ rollouts(active: true) { id } }')).data.rollouts[0]?.id
      if (!id) await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(id, 'the rollout is running')
    const sub = subscribe(ta.port, `subscription($id: ID!) { rollout(id: $id) { id state finishedAt nodes { node phase status } } }`, { init: { Authorization: `Bearer ${TOKENS.viewer}` }, variables: { id } })
    t.after(() => sub.close())
    const result = await applying
    await sub.ended()
    assert.equal(sub.error, undefined)
    assert.equal(sub.completed, true)
    const states = sub.values.map((v) => v.data?.rollout)
    assert.ok(states.length >= 1, 'at least one state')
    const last = states[states.length - 1]
    assert.equal(last.id, id)
    assert.equal(last.state, 'FAILED')
    assert.ok(last.finishedAt, 'the last state is finished')
    assert.equal(states.filter((s) => s.finishedAt).length, 1, 'only the last state is finished')
    assert.equal(result.data.applyStaticPodToNodes.rolloutId, id)

    const events = (await ta.as(TOKENS.viewer, '{ events(types: [ROLLOUT_STARTED, ROLLOUT_FINISHED]) { type node actor message } }')).data.events
    assert.deepEqual(events.map((e: { type: string }) => e.type), ['ROLLOUT_FINISHED', 'ROLLOUT_STARTED'])
    assert.equal(events[0].actor, 'ci-operator')
    assert.match(events[0].message, new RegExp(`${id}.*FAILED`))

    const unknown = subscribe(ta.port, 'subscription { rollout(id: "no-such-rollout") { id } }', { init: { Authorization: `Bearer ${TOKENS.viewer}` } })
    t.after(() => unknown.close())
    await unknown.ended()
    assert.equal((unknown.error as Array<{ extensions: { code: string } }>)[0]?.extensions.code, 'NOT_FOUND')
  })
})

describe('webhooks', () => {
  it('a receiver that answers 500 three times gets the event on the next attempt, once, with one delivery id; one that never answers delays nothing', async (t) => {
    const ta = await appWithTokens(t)
    const flaky = await receiver(t, (n) => (n <= 3 ? 500 : 200))
    const dead = await receiver(t, () => 'never')
    for (const url of [dead.url, flaky.url]) {
      const res = await ta.as(TOKENS.admin, CREATE_WEBHOOK, { input: { url, secret: 'secret-of-the-hook' } })
      assert.deepEqual(res.data.createWebhook.userErrors, [])
    }
    await observeRound(ta)
    const started = Date.now()
    const write = await ta.as(TOKENS.operator, CREATE_POD, { node: 'local', manifest: podYaml('web') })
    assert.ok(Date.now() - started < 2_000, 'the write did not wait for any webhook')
    assert.deepEqual(write.data.createStaticPod.userErrors, [])
    await flaky.waitFor(1)
    assert.equal(flaky.attempts.length, 4)
    const ids = new Set(flaky.attempts.map((a) => a.headers['x-staticpod-delivery']))
    assert.equal(ids.size, 1, 'the same delivery id on every retry')
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(flaky.deliveries.length, 1, 'delivered once')
    assert.ok(dead.attempts.length >= 1, 'the dead receiver was tried')
    const hooks = (await ta.as(TOKENS.admin, '{ webhooks { url lastResult failedDeliveries } }')).data.webhooks
    const flakyHook = hooks.find((h: { url: string }) => h.url === flaky.url)
    assert.equal(flakyHook.lastResult, '200')
    assert.equal(flakyHook.failedDeliveries, 0)

    const removed = await ta.as(TOKENS.admin, `mutation { deleteWebhook(id: "${(await ta.as(TOKENS.admin, '{ webhooks { id url } }')).data.webhooks.find((h: { url: string }) => h.url === flaky.url).id}") { removed userErrors { code } } }`)
    assert.equal(removed.data.deleteWebhook.removed, true)
    const missing = await ta.as(TOKENS.admin, 'mutation { deleteWebhook(id: "wh_nope") { removed userErrors { code field } } }')
    assert.equal(missing.data.deleteWebhook.userErrors[0].code, 'NOT_FOUND')
  })

  it('bad webhook input is a typed error naming the field, and nothing is stored', async (t) => {
    const ta = await appWithTokens(t)
    for (const [input, field] of [
      [{ url: 'ftp://127.0.0.1/x', secret: 'long-enough-secret' }, 'url'],
      [{ url: 'http://user:pw@127.0.0.1/x', secret: 'long-enough-secret' }, 'url'],
      [{ url: 'http://127.0.0.1/x', secret: 'short' }, 'secret'],
    ] as const) {
      const res = await ta.as(TOKENS.admin, CREATE_WEBHOOK, { input })
      assert.equal(res.data.createWebhook.userErrors[0].code, 'VALIDATION_FAILED', JSON.stringify(res))
      assert.deepEqual(res.data.createWebhook.userErrors[0].field, [field])
    }
    const badType = await ta.as(TOKENS.admin, CREATE_WEBHOOK, { input: { url: 'http://127.0.0.1/x', secret: 'long-enough-secret', types: ['NOPE'] } })
    assert.ok(badType.errors, 'an unknown enum value is refused by GraphQL itself')
    assert.deepEqual((await ta.as(TOKENS.admin, '{ webhooks { id } }')).data.webhooks, [])
  })
})

describe('two instances on one SQLite file', () => {
  it('produce each event once', async (t) => {
    const dir = await makeTempDir()
    const one = await appWithTokens(t, { dir })
    const two = await appWithTokens(t, { dir })
    await Promise.all([observeRound(one), observeRound(two)])
    for (const image of ['nginx:2.1', 'nginx:2.2', 'nginx:2.3', 'nginx:2.4']) {
      await writeFile(join(one.manifests, 'web.yaml'), podYaml('web', image))
      await Promise.all([observeRound(one), observeRound(two), observeRound(one), observeRound(two)])
    }
    const events = (await one.as(TOKENS.viewer, '{ events(limit: 1000) { type name toHash } }')).data.events
    assert.deepEqual(events.map((e: { type: string }) => e.type), ['STATIC_POD_CHANGED', 'STATIC_POD_CHANGED', 'STATIC_POD_CHANGED', 'STATIC_POD_ADDED'], JSON.stringify(events))
    assert.equal(new Set(events.map((e: { toHash: string }) => e.toHash)).size, 4)
  })
})
