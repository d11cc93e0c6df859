// Route schemas compiled on first use (src/http/lazy-schemas.ts, what the
// Lambda app does): nothing is compiled at ready(), and the REST answers,
// validation errors and coercions included, are those of the app that
// compiles at start.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Fastify from 'fastify'
import { lazySchemaController } from '../../src/http/lazy-schemas.ts'
import { build, podYaml } from '../helper.ts'

const POD = '/api/v1/nodes/local/staticpods/kube-system/web'

/** The same requests to both apps: status, content type and body. */
const REQUESTS: Array<{ method: 'GET' | 'PUT' | 'DELETE'; url: string; headers?: Record<string, string>; payload?: string }> = [
  { method: 'GET', url: '/api/v1/nodes' },
  { method: 'PUT', url: POD, headers: { 'content-type': 'application/yaml' }, payload: podYaml('web', 'nginx:1', '  namespace: kube-system\n') },
  // Querystring coercion ('0' is the integer 0) and the response schema's fields.
  { method: 'GET', url: `${POD}?maxAgeSeconds=0` },
  { method: 'GET', url: '/api/v1/nodes/local/staticpods?maxAgeSeconds=0' },
  // Validation failures: the message comes from Ajv through the lazy validator's errors.
  { method: 'GET', url: `${POD}?maxAgeSeconds=soon` },
  { method: 'GET', url: `${POD}/log?tailLines=-1` },
  { method: 'GET', url: '/api/v1/nodes/local/staticpods/kube-system/absent' },
  { method: 'DELETE', url: POD },
]

async function answers(lazySchemas: boolean, t: Parameters<typeof build>[0]): Promise<unknown[]> {
  const { app, dir } = await build(t, { appOptions: { lazySchemas } })
  const out: unknown[] = []
  for (const request of REQUESTS) {
    const response = await app.inject(request)
    const type = String(response.headers['content-type'] ?? '')
    // Each app has a temp dir of its own, named in paths.
    const text = response.body.replaceAll(dir, '<dir>')
    const body = type.startsWith('application/json') && text ? withoutTimes(JSON.parse(text)) : text
    out.push({ request: `${request.method} ${request.url}`, status: response.statusCode, type, body })
  }
  return out
}

/** Times and durations differ between two runs; everything else must not. */
function withoutTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutTimes)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, /At$|Ms$|^age/.test(k) ? typeof v : withoutTimes(v)]))
}

describe('lazy route schemas', () => {
  it('the REST answers are those of the app that compiles at start, errors and coercions included', async (t) => {
    const eager = await answers(false, t)
    const lazy = await answers(true, t)
    assert.deepEqual(lazy, eager)
    // The cases above did what they are there for.
    const statuses = (eager as Array<{ status: number }>).map((a) => a.status)
    assert.deepEqual(statuses, [200, 201, 200, 200, 400, 400, 404, 204])
  })

  it('compiles nothing at ready(): a broken schema fails its route on first use, not the start', async () => {
    const broken = { querystring: { type: 'object', properties: { n: { type: 'no-such-type' } } } }
    const eager = Fastify({ logger: false })
    eager.get('/broken', { schema: broken }, async () => 'ok')
    await assert.rejects(async () => { await eager.ready() }, /no-such-type|schema is invalid/)

    const lazy = Fastify({ logger: false, schemaController: lazySchemaController() })
    lazy.get('/broken', { schema: broken }, async () => 'ok')
    lazy.get('/fine', { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } }, response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } } } }, async (request) => ({ n: (request.query as { n: number }).n, dropped: true }))
    await lazy.ready()
    assert.equal((await lazy.inject('/broken?n=1')).statusCode, 500)
    const fine = await lazy.inject('/fine?n=7')
    assert.equal(fine.statusCode, 200)
    assert.deepEqual(fine.json(), { n: 7 }, 'coerced by the validator, and the serializer keeps only the schema\'s fields')
    assert.equal((await lazy.inject('/fine?n=x')).statusCode, 400)
    await Promise.all([eager.close(), lazy.close()])
  })

  it('refuses a header schema (Fastify would not lower-case its names for a compiler of ours)', async () => {
    const app = Fastify({ logger: false, schemaController: lazySchemaController() })
    app.get('/h', { schema: { headers: { type: 'object', properties: { 'X-Thing': { type: 'string' } } } } }, async () => 'ok')
    await assert.rejects(async () => { await app.ready() }, /header schemas are not supported/)
  })
})
