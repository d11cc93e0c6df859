// The byte budget shared by concurrent requests with large bodies
// (src/http/manifest-budget.ts): over real HTTP on 127.0.0.1, since what it
// guards against (bodies arriving slowly, clients going away mid-body) does
// not exist with app.inject. A request whose body is still arriving holds its
// reservation, which makes the "budget is full" states deterministic.

import assert from 'node:assert/strict'
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import { describe, it, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { ByteBudget } from '../../src/http/manifest-budget.ts'
import { build, podYaml } from '../helper.ts'

const KiB = 1024

/** A valid Pod of about `bytes` bytes (one big annotation). */
function bigPod(name: string, bytes: number): string {
  const head = podYaml(name, 'nginx:1.27', '  annotations:\n    blob: ""\n')
  return head.replace('blob: ""', `blob: "${'x'.repeat(Math.max(0, bytes - head.length))}"`)
}

interface Answer {
  status: number
  headers: IncomingMessage['headers']
  body: string
}

function collect(res: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
    res.on('error', reject)
  })
}

/** One request on its own connection; resolves with the answer, whatever it is. */
function send(port: number, method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: { 'content-type': 'application/yaml', ...headers } })
    req.on('response', (res) => void collect(res).then(resolve, reject))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * A request that announces `length` bytes and sends only `sent` of them, so
 * that it holds its reservation until finished or destroyed.
 */
async function partial(app: FastifyInstance, port: number, length: number, sent: number): Promise<{ req: ClientRequest; answer: Promise<Answer> }> {
  const before = app.manifestBudget.inUse
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'PUT',
    path: '/api/v1/nodes/local/staticpods/default/holder',
    agent: false,
    headers: { 'content-type': 'application/yaml', 'content-length': String(length) },
  })
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => void collect(res).then(resolve, reject))
    req.on('error', reject)
  })
  answer.catch(() => {}) // a destroyed request rejects; the tests that destroy it do not wait for it
  req.write('x'.repeat(sent))
  await until(() => app.manifestBudget.inUse > before, 'the partial request reserved its size')
  return { req, answer }
}

/** Polls a condition every 10 ms, failing after 10 s (a bound for a loaded machine, not a measurement). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  assert.fail(`timed out waiting until ${what}`)
}

async function listening(
  t: TestContext,
  env: Record<string, string>,
  beforeListen: (app: FastifyInstance) => void = () => {},
): Promise<{ app: FastifyInstance; port: number }> {
  const { app } = await build(t, { env })
  beforeListen(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  assert.ok(address && typeof address === 'object')
  return { app, port: address.port }
}

const podPath = (name: string) => `/api/v1/nodes/local/staticpods/default/${name}`

describe('manifest budget over HTTP', () => {
  it('concurrent large PUTs: each is answered 2xx or 503 BUSY with Retry-After; the budget is given back', async (t) => {
    // Room for one 200 KB body at a time; a short wait, so that some wait and some are refused.
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(300 * KiB), MANIFEST_BUDGET_WAIT_MS: '150' })
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => send(port, 'PUT', podPath(`big-${i}`), bigPod(`big-${i}`, 200 * KiB))))
    assert.equal(answers.length, 8)
    for (const a of answers) {
      if (a.status === 503) {
        assert.match(String(a.headers['retry-after']), /^[1-9]\d*$/)
        assert.equal(JSON.parse(a.body).error.code, 'BUSY')
      } else {
        assert.ok(a.status === 201 || a.status === 200, `status ${a.status}: ${a.body}`)
      }
    }
    assert.ok(answers.some((a) => a.status === 201), 'at least the first one is served')
    assert.equal(app.manifestBudget.inUse, 0)
    assert.equal(app.manifestBudget.waiting, 0)
  })

  it('a full budget refuses at once with waitMs 0; once the holder goes away mid-body, the whole budget is back', async (t) => {
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(300 * KiB), MANIFEST_BUDGET_WAIT_MS: '0' })
    const holder = await partial(app, port, 250 * KiB, 10 * KiB)
    assert.equal(app.manifestBudget.inUse, 250 * KiB)

    const refused = await Promise.all([0, 1, 2].map((i) => send(port, 'PUT', podPath(`w-${i}`), bigPod(`w-${i}`, 100 * KiB))))
    for (const a of refused) {
      assert.equal(a.status, 503, a.body)
      assert.equal(a.headers['retry-after'], '1')
      assert.deepEqual(Object.keys(JSON.parse(a.body).error), ['code', 'message'])
      assert.equal(JSON.parse(a.body).error.code, 'BUSY')
    }
    // Small bodies are not counted: served while the budget is full.
    const small = await send(port, 'PUT', podPath('small'), podYaml('small'))
    assert.equal(small.status, 201, small.body)

    holder.req.destroy()
    await until(() => app.manifestBudget.inUse === 0, 'the aborted request gave its reservation back')
    // All of it: a body of the whole budget is served at once (waitMs 0 refuses anything else).
    const whole = await send(port, 'PUT', podPath('whole'), bigPod('whole', 300 * KiB - 100))
    assert.equal(whole.status, 201, whole.body)
    assert.equal(app.manifestBudget.inUse, 0)
  })

  it('a waiting request is served when the holder finishes; one that gives up while waiting leaves nothing behind', async (t) => {
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(300 * KiB), MANIFEST_BUDGET_WAIT_MS: '20000' })
    const holder = await partial(app, port, 250 * KiB, 10 * KiB)

    // A waiter whose client goes away: no reservation is ever made for it.
    const quitter = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: podPath('quitter'), agent: false, headers: { 'content-length': String(200 * KiB) } })
    quitter.on('error', () => {})
    quitter.write('x')
    await until(() => app.manifestBudget.waiting === 1, 'the second request waits')
    quitter.destroy()
    await until(() => app.manifestBudget.waiting === 0, 'the waiter that went away is dropped')

    const waiting = send(port, 'PUT', podPath('patient'), bigPod('patient', 200 * KiB))
    await until(() => app.manifestBudget.waiting === 1, 'the third request waits')
    // The holder's body completes (it is not a manifest: 400), and its bytes go to the waiter.
    holder.req.end('x'.repeat(240 * KiB))
    const held = await holder.answer
    assert.equal(held.status, 400, held.body)
    const served = await waiting
    assert.equal(served.status, 201, served.body)
    assert.equal(app.manifestBudget.inUse, 0)
    assert.equal(app.manifestBudget.waiting, 0)
  })

  it('GraphQL: a refused request gets the GraphQL error shape with extensions.code BUSY', async (t) => {
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(300 * KiB), MANIFEST_BUDGET_WAIT_MS: '0' })
    const holder = await partial(app, port, 250 * KiB, 10 * KiB)
    const query = 'mutation($m: String!) { putStaticPod(input: {node: "local", manifest: $m, dryRun: true}) { userErrors { code } } }'
    const refused = await send(port, 'POST', '/graphql', JSON.stringify({ query, variables: { m: bigPod('g', 100 * KiB) } }), { 'content-type': 'application/json' })
    assert.equal(refused.status, 503)
    assert.equal(refused.headers['retry-after'], '1')
    const body = JSON.parse(refused.body)
    assert.equal(body.data, null)
    assert.equal(body.errors[0].extensions.code, 'BUSY')
    assert.match(body.errors[0].message, /busy/)
    holder.req.destroy()
    await until(() => app.manifestBudget.inUse === 0, 'the budget is back')
  })

  it('a body larger than the whole budget is served when alone; so is a chunked one (it reserves the body limit)', async (t) => {
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(100 * KiB), MANIFEST_BUDGET_WAIT_MS: '0' })
    const big = await send(port, 'PUT', podPath('huge'), bigPod('huge', 400 * KiB))
    assert.equal(big.status, 201, big.body)
    assert.equal(app.manifestBudget.inUse, 0)

    const chunked = await new Promise<Answer>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: podPath('chunked'), agent: false, headers: { 'content-type': 'application/yaml' } })
      req.on('response', (res) => void collect(res).then(resolve, reject))
      req.on('error', reject)
      const text = podYaml('chunked')
      req.write(text.slice(0, 20))
      assert.equal(req.getHeader('content-length'), undefined)
      req.end(text.slice(20))
    })
    assert.equal(chunked.status, 201, chunked.body)
    assert.equal(app.manifestBudget.inUse, 0)
  })

  it('a client that goes away once its body is read: the reservation is kept while the handler still runs, then given back', async (t) => {
    // The handler of the test's request waits at a gate the test opens.
    let entered!: () => void
    const handlerEntered = new Promise<void>((resolve) => (entered = resolve))
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    let serverSocketClosed = false
    const { app, port } = await listening(t, { MANIFEST_BUDGET_BYTES: String(300 * KiB), MANIFEST_BUDGET_WAIT_MS: '0' }, (app) => {
      app.addHook('preHandler', async (request) => {
        if (!request.url.includes('/gone')) return
        request.raw.socket.once('close', () => (serverSocketClosed = true))
        entered()
        await gate
      })
    })
    const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: `${podPath('gone')}?dryRun=true`, agent: false, headers: { 'content-type': 'application/yaml' } })
    req.on('error', () => {})
    req.end(bigPod('gone', 200 * KiB))
    await handlerEntered
    req.destroy()
    await until(() => serverSocketClosed, 'the server saw the connection close')
    // Let the close events run everywhere before looking.
    await new Promise((r) => setImmediate(r))
    assert.ok(app.manifestBudget.inUse >= 200 * KiB, 'still reserved: the handler holds the body and its parse')
    open()
    await until(() => app.manifestBudget.inUse === 0, 'the reservation is given back once the handler has answered')
    const next = await send(port, 'PUT', podPath('whole'), bigPod('whole', 300 * KiB - 100))
    assert.equal(next.status, 201, next.body)
  })
})

describe('ByteBudget', () => {
  it('first come, first served; a request larger than the capacity takes all of it; waiters time out or are aborted', async () => {
    const budget = new ByteBudget(100)
    const a = await budget.acquire(60, 0)
    assert.ok(a)
    assert.equal(await budget.acquire(50, 0), null, 'no room and no wait')
    const b = budget.acquire(50, 10_000)
    const c = budget.acquire(10, 10_000) // fits, but waits behind b
    assert.equal(budget.waiting, 2)
    a.release()
    a.release() // only the first release counts
    const [leaseB, leaseC] = await Promise.all([b, c])
    assert.equal(budget.inUse, 60)
    leaseB!.release()
    leaseC!.release()
    assert.equal(budget.inUse, 0)

    const whole = await budget.acquire(1_000, 0)
    assert.equal(whole?.bytes, 100)
    const aborted = new AbortController()
    const waiting = budget.acquire(1, 10_000, aborted.signal)
    const timedOut = budget.acquire(1, 1)
    assert.equal(await timedOut, null)
    aborted.abort()
    assert.equal(await waiting, null)
    assert.equal(budget.waiting, 0)
    whole!.release()
    assert.equal(budget.inUse, 0)
  })
})
