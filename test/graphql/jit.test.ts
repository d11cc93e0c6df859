// Queries asked again run compiled by graphql-jit (mercurius's jit option,
// src/app.ts): the first answers of a query come from graphql-js, the later
// ones from the compiled query. Each case here asks the same query until it
// is answered compiled and requires every answer, status included, to be the
// same as graphql-js's first one: data, lists, typed errors, bugs hidden as
// INTERNAL_SERVER_ERROR, null in a non-null field, partial data.
//
// Which engine answered is told by the top-level resolver's own stack (graphql-js
// calls it from its execute.js; a compiled query from its generated code), so a
// case that was never answered compiled fails instead of passing unseen.

import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as pause } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { GraphQLObjectType, type GraphQLFieldResolver } from 'graphql'
import { build, podYaml, type TestApp } from '../helper.ts'

type Engine = 'graphql-js' | 'graphql-jit'

interface Answer {
  status: number
  body: unknown
  engine: Engine | undefined
}

/**
 * Most asks before a query must have been answered compiled. It is queued for
 * compiling at its second ask, and compiled at the next turn of the event loop,
 * or, when the loop has not idled since the last compile (mercurius's
 * eluThreshold), 50 ms later: each ask is followed by a pause of PAUSE_MS, idle.
 */
const MAX_ASKS = 12
const PAUSE_MS = 20

/** Records, for each request, which engine called the top-level field resolvers. */
function watchEngines(app: FastifyInstance): { take(): Engine | undefined } {
  let engine: Engine | undefined
  const query = app.graphql.schema.getQueryType()
  assert.ok(query, 'the schema has a Query type')
  for (const field of Object.values(query.getFields())) {
    const resolve = field.resolve as GraphQLFieldResolver<unknown, unknown> | undefined
    assert.ok(resolve, `Query.${field.name} has a resolver`)
    field.resolve = (...args) => {
      engine = new Error().stack?.includes('/graphql/execution/execute.js') ? 'graphql-js' : 'graphql-jit'
      return resolve(...args)
    }
  }
  return {
    take() {
      const taken = engine
      engine = undefined
      return taken
    },
  }
}

/** Replaces a field's resolver (before the first request, so both engines use it). */
function replaceResolver(app: FastifyInstance, type: string, field: string, resolve: GraphQLFieldResolver<unknown, unknown>): void {
  const object = app.graphql.schema.getType(type)
  assert.ok(object instanceof GraphQLObjectType, `${type} is an object type`)
  const found = object.getFields()[field]
  assert.ok(found, `${type}.${field} exists`)
  found.resolve = resolve
}

async function jitApp(t: TestContext): Promise<TestApp & { ask(query: string, variables?: Record<string, unknown>): Promise<Answer> }> {
  // Stored state served for an hour, and no observer rounds: every answer of a case reads the same observation.
  const app = await build(t, { env: { STATIC_PODS_MAX_AGE_SECONDS: '3600', OBSERVE_INTERVAL_SECONDS: '0' } })
  const engines = watchEngines(app.app)
  const ask = async (query: string, variables?: Record<string, unknown>): Promise<Answer> => {
    const res = await app.app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
    await pause(PAUSE_MS)
    return { status: res.statusCode, body: res.json(), engine: engines.take() }
  }
  return { ...app, ask }
}

/** Asks until the compiled query answers; every answer must be graphql-js's first one. */
async function sameAnswerCompiled(ask: (query: string, variables?: Record<string, unknown>) => Promise<Answer>, query: string, variables?: Record<string, unknown>): Promise<Answer> {
  const first = await ask(query, variables)
  assert.equal(first.engine, 'graphql-js', `the first answer comes from graphql-js: ${query}`)
  for (let i = 1; i < MAX_ASKS; i++) {
    const next = await ask(query, variables)
    assert.deepEqual({ status: next.status, body: next.body }, { status: first.status, body: first.body }, `answer ${i + 1} (${next.engine}) is graphql-js's: ${query}`)
    if (next.engine === 'graphql-jit') return first
  }
  assert.fail(`not answered by the compiled query within ${MAX_ASKS} asks: ${query}`)
}

async function withPods(app: TestApp): Promise<void> {
  await writeFile(join(app.manifests, 'web.yaml'), podYaml('web', 'nginx:1', '  namespace: edge\n  labels:\n    app: web\n'))
  await writeFile(join(app.manifests, 'db.yaml'), podYaml('db', 'postgres:16'))
  // Read and stored once, so that every answer after this one serves the same stored observation.
  const res = await app.gql('{ staticPods(maxAgeSeconds: 0) { id } }')
  assert.deepEqual(res.errors, undefined, 'the pods were read')
  assert.equal(res.data.staticPods.length, 2, 'two pods on the node')
}

describe('GraphQL answers compiled by graphql-jit are graphql-js answers', () => {
  it('lists, nested objects and the custom scalars (DateTime, JSON)', async (t) => {
    const app = await jitApp(t)
    await withPods(app)
    const { body } = await sameAnswerCompiled(
      app.ask,
      '{ staticPods { id nodeName namespace name mirrorPodName fileName path hash revision managed stale observedAt pod containers { name image init } node { name kind labels { key value } } } }',
    )
    const pods = (body as { data: { staticPods: Array<{ name: string; pod: { metadata: unknown } }> } }).data.staticPods
    assert.deepEqual(pods.map((p) => p.name).sort(), ['db', 'web'], 'both pods, in a list')
    assert.deepEqual(pods.find((p) => p.name === 'web')?.pod.metadata, { name: 'web', namespace: 'edge', labels: { app: 'web' } }, 'JSON scalar served as is')
    await sameAnswerCompiled(app.ask, '{ nodes { name kind staticPods(namespace: "edge") { name } } }')
  })

  it('arguments from variables, and a variable of the wrong type (refused before execution, the same way)', async (t) => {
    const app = await jitApp(t)
    await withPods(app)
    const query = 'query($ns: String, $age: Int) { staticPods(namespace: $ns, maxAgeSeconds: $age) { name namespace } }'
    const refusedFirst = await app.ask(query, { ns: 'edge', age: 'an hour' })
    assert.equal(refusedFirst.status, 400, 'a bad variable is refused')
    assert.equal((refusedFirst.body as { errors: Array<{ extensions: { code: string } }> }).errors[0]?.extensions.code, 'GRAPHQL_VALIDATION_FAILED', 'with its code')
    const { body } = await sameAnswerCompiled(app.ask, query, { ns: 'edge', age: 3600 })
    assert.deepEqual(body, { data: { staticPods: [{ name: 'web', namespace: 'edge' }] } }, 'the variables were applied')
    // The query is compiled now (sameAnswerCompiled saw it answer): the same refusal, word for word.
    const refusedCompiled = await app.ask(query, { ns: 'edge', age: 'an hour' })
    assert.deepEqual({ status: refusedCompiled.status, body: refusedCompiled.body }, { status: refusedFirst.status, body: refusedFirst.body }, 'the same refusal once compiled')
    const missing = await app.ask('query($node: String!) { staticPods(node: $node) { name } }', {})
    assert.equal(missing.status, 400, 'a missing required variable is refused')
  })

  it('a typed error of a resolver keeps its code, beside the data of the other fields (partial data)', async (t) => {
    const app = await jitApp(t)
    await withPods(app)
    const { body } = await sameAnswerCompiled(app.ask, '{ pods: staticPods { name } missing: staticPod(node: "nope", name: "web") { name } }')
    const { data, errors } = body as { data: { pods: unknown[]; missing: unknown }; errors: Array<{ path: string[]; extensions: { code: string } }> }
    assert.equal(data.pods.length, 2, 'the other field answered')
    assert.equal(data.missing, null, 'the failed field is null')
    assert.deepEqual(errors.map((e) => [e.extensions.code, e.path]), [['NOT_FOUND', ['missing']]], 'one NOT_FOUND error at its path')
    // A non-null list field failing nulls the whole data: the same again.
    const whole = await sameAnswerCompiled(app.ask, '{ staticPods(node: "nope") { name } }')
    assert.deepEqual((whole.body as { data: unknown }).data, null, 'no data')
    const bad = await sameAnswerCompiled(app.ask, '{ nodes(labelSelector: "a in (b") { name } }')
    assert.match(JSON.stringify(bad.body), /"code":"[A-Z_]+"/, 'a bad argument answers with a code')
  })

  it('an unexpected error is INTERNAL_SERVER_ERROR without its details', async (t) => {
    const app = await jitApp(t)
    replaceResolver(app.app, 'StaticPod', 'manifest', () => {
      throw new Error('secret detail from /etc/kubernetes/pki')
    })
    await withPods(app)
    const { body } = await sameAnswerCompiled(app.ask, '{ staticPods { name manifest } }')
    const text = JSON.stringify(body)
    assert.doesNotMatch(text, /secret detail/, 'the message stays in the log')
    const { data, errors } = body as { data: unknown; errors: Array<{ message: string; path: unknown[]; extensions: { code: string } }> }
    assert.equal(data, null, 'a non-null field failed: no data')
    assert.ok(errors.length > 0, 'errors are reported')
    for (const e of errors) assert.deepEqual([e.message, e.extensions], ['Internal server error', { code: 'INTERNAL_SERVER_ERROR' }], 'no details')
    assert.deepEqual(errors[0]?.path?.slice(-1), ['manifest'], 'at the field that failed')
  })

  it('null in a non-null field and a value its scalar cannot serialise are INTERNAL_SERVER_ERROR', async (t) => {
    const app = await jitApp(t)
    replaceResolver(app.app, 'StaticPod', 'hash', () => null)
    replaceResolver(app.app, 'StaticPod', 'revision', () => 'not a number')
    await withPods(app)
    for (const query of ['{ staticPods { name hash } }', '{ staticPods { name revision } }', '{ staticPod(node: "local", namespace: "edge", name: "web") { name hash } }']) {
      const { body } = await sameAnswerCompiled(app.ask, query)
      const { errors } = body as { errors?: Array<{ message: string; path: unknown[]; extensions: { code: string } }> }
      assert.ok(errors && errors.length > 0, `errors are reported: ${query}`)
      for (const e of errors) {
        assert.deepEqual([e.message, e.extensions], ['Internal server error', { code: 'INTERNAL_SERVER_ERROR' }], `a bug, without details: ${query}`)
        assert.ok(Array.isArray(e.path), `with its path: ${query}`)
      }
    }
  })
})
