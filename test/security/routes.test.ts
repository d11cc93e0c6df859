// Deny by default, proven over every route the app registers: each one that
// is not on the public list answers 401 without a token, under every spelling
// of its path an attacker might try (the bypass that was found: /%61pi/v1/nodes
// reached the handler because authentication looked at the raw URL while the
// router matched the decoded one). Requests go over real HTTP with the path
// sent byte for byte as written here (node:http does not normalise it).

import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { rm, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { TOKENS, TOKENS_DOCUMENT } from '../http/tokens.ts'
import { testResolver } from '../support/resolver.ts'

/** What may answer without a token: health, readiness, documentation pages, and /metrics (METRICS_PUBLIC). */
const EXPECTED_PUBLIC = [/^\/healthz$/, /^\/readyz$/, /^\/metrics$/, /^\/graphiql(\/assets\/:asset)?$/, /^\/docs(\/.*)?$/]

interface Answer {
  status: number
  body: string
}

function send(base: URL, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: base.hostname, port: base.port, method, path, headers: { ...headers, connection: 'close' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    // A body for methods that take one, so that a handler reached by mistake would act on it.
    if (['POST', 'PUT', 'PATCH'].includes(method)) {
      req.setHeader('content-type', 'application/json')
      req.end(JSON.stringify({ query: 'mutation { registerNode(input: {name: "pwned", host: "127.0.0.1"}) { node { name } } }' }))
    } else req.end()
  })
}

/** A concrete path for a route pattern: parameters and wildcards filled in. */
function concrete(pattern: string): string {
  return pattern.replace(/:[A-Za-z_]+/g, 'x').replace(/\*$/, 'x')
}

/** The spellings of one path that must not get around authentication. */
function spellings(path: string): Array<{ how: string; path: string }> {
  const letter = /[a-z]/i.exec(path)
  const at = letter?.index ?? 1
  const ch = path[at] ?? 'a'
  const hex = ch.charCodeAt(0).toString(16)
  const secondSlash = path.indexOf('/', 1)
  return [
    { how: 'as registered', path },
    { how: 'a percent-encoded letter', path: `${path.slice(0, at)}%${hex}${path.slice(at + 1)}` },
    { how: 'a percent-encoded letter, upper-case hex', path: `${path.slice(0, at)}%${hex.toUpperCase()}${path.slice(at + 1)}` },
    { how: 'every letter percent-encoded', path: path.replace(/[a-z]/gi, (c) => `%${c.charCodeAt(0).toString(16)}`) },
    { how: 'double encoding', path: `${path.slice(0, at)}%25${hex}${path.slice(at + 1)}` },
    ...(secondSlash > 0 ? [{ how: '%2F for a slash', path: `${path.slice(0, secondSlash)}%2F${path.slice(secondSlash + 1)}` }] : []),
    ...(secondSlash > 0 ? [{ how: 'a repeated inner slash', path: `${path.slice(0, secondSlash)}/${path.slice(secondSlash)}` }] : []),
    { how: 'a trailing slash', path: `${path}/` },
    { how: 'a leading double slash', path: `/${path}` },
    { how: 'upper case', path: path.toUpperCase() },
    { how: ';params', path: `${path};jsessionid=1` },
    { how: 'a query string', path: `${path}?x=1` },
    { how: 'a dot segment', path: `/.${path}` },
  ]
}

describe('deny by default: every route, every spelling', () => {
  let app: FastifyInstance
  let dir: string
  let base: URL
  const routes: Array<{ method: string; url: string }> = []

  before(async () => {
    dir = await makeTempDir()
    await mkdir(join(dir, 'manifests'))
    await writeFile(join(dir, 'manifests', 'etcd.yaml'), podYaml('etcd'))
    const config = loadConfig({
      STORE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      LOCAL_NODE_PATH: join(dir, 'manifests'),
      LOCAL_NODE_STATE_DIR: join(dir, 'state'),
      LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
      AUTH_TOKENS: TOKENS_DOCUMENT,
      // This test sends thousands of requests without a token from one address.
      AUTH_FAILURES_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_MINUTE: '1000000',
    })
    const onRoute = (route: RouteOptions): void => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url })
    }
    app = await buildApp(config, { logger: false, onRoute, resolveHost: testResolver })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    base = new URL(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`)
  })

  after(async () => {
    await app.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('enumerates the whole surface (REST, GraphQL, metrics, health, docs)', () => {
    const urls = new Set(routes.map((r) => r.url))
    for (const url of ['/graphql', '/api/v1/nodes', '/api/v1/nodes/:node/staticpods/:namespace/:name', '/healthz', '/metrics', '/graphiql']) {
      assert.ok(urls.has(url), `${url} was not reported by onRoute: ${[...urls].join(' ')}`)
    }
    assert.ok(routes.some((r) => r.method === 'PUT') && routes.some((r) => r.method === 'DELETE') && routes.some((r) => r.method === 'POST'))
  })

  it('only the public routes answer without a token', async () => {
    const open: string[] = []
    for (const route of routes) {
      const res = await send(base, route.method, concrete(route.url))
      if (res.status !== 401) open.push(`${route.method} ${route.url} -> ${res.status}`)
    }
    for (const line of open) {
      const url = line.split(' ')[1] as string
      assert.ok(EXPECTED_PUBLIC.some((re) => re.test(url)), `answered without a token: ${line}`)
      assert.ok(/^(GET|HEAD) /.test(line), `a public route answered a ${line}`)
    }
    assert.ok(open.some((l) => l.startsWith('GET /healthz -> 200')), `healthz is public: ${open.join(', ')}`)
  })

  it('no spelling of a protected path answers without a token (401, with the contract body)', async () => {
    const protectedRoutes = routes.filter((r) => !EXPECTED_PUBLIC.some((re) => re.test(r.url)))
    assert.ok(protectedRoutes.length >= 6, `protected routes: ${protectedRoutes.length}`)
    const leaks: string[] = []
    let tried = 0
    for (const route of protectedRoutes) {
      for (const spelling of spellings(concrete(route.url))) {
        for (const method of new Set([route.method, 'HEAD', 'OPTIONS'])) {
          tried++
          const res = await send(base, method, spelling.path)
          if (res.status !== 401) leaks.push(`${method} ${spelling.path} (${spelling.how}, route ${route.url}) -> ${res.status} ${res.body.slice(0, 80)}`)
          else if (method !== 'HEAD') assert.match(res.body, /UNAUTHENTICATED/, `${method} ${spelling.path}`)
        }
      }
    }
    assert.deepEqual(leaks, [], `${leaks.length} of ${tried} requests were not refused`)
    assert.equal(await send(base, 'GET', '/').then((r) => r.status), 401, 'an unknown path is 401 too: a 404 would tell which paths exist')
    // Nothing was registered by any of the POSTs above.
    const nodes = await app.services.store.listNodes()
    assert.deepEqual(nodes.map((n) => n.name), ['local'])
  })

  it('the same requests with a token are served (the test can tell the difference)', async () => {
    const auth = { authorization: `Bearer ${TOKENS.viewer}` }
    assert.equal((await send(base, 'GET', '/api/v1/nodes', auth)).status, 200)
    assert.equal((await send(base, 'GET', '/%61pi/v1/nodes', auth)).status, 200)
    assert.equal((await send(base, 'GET', '/api/v1/nodes/local/staticpods/default/etcd', auth)).status, 200)
    assert.equal((await send(base, 'GET', '/API/v1/nodes', auth)).status, 404)
    const wrong = { authorization: `Bearer ${TOKENS.viewer}x` }
    assert.equal((await send(base, 'GET', '/%61pi/v1/nodes', wrong)).status, 401)
  })

  it('a URL the router refuses (bad encoding, too long) answers in the contract shape without echoing it', async () => {
    const bad = await send(base, 'GET', '/api/v1/nodes/%E0%A4%A')
    assert.equal(bad.status, 400)
    assert.equal(JSON.parse(bad.body).error.code, 'BAD_REQUEST')
    const long = `/api/v1/nodes/${'n'.repeat(5000)}/staticpods`
    const res = await send(base, 'GET', long)
    assert.ok(res.status === 414 || res.status === 401, `status ${res.status}`)
    assert.ok(!res.body.includes('nnnnnnnnnn'), `the answer echoes the URL: ${res.body.slice(0, 120)}`)
    if (res.status === 414) assert.deepEqual(Object.keys(JSON.parse(res.body)), ['error'])
  })
})
