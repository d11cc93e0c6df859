// The Lambda bundle itself (scripts/build-lambda.mjs), not the TypeScript
// sources: what it leaves out, and that it serves REST (as the first request
// of the container), health, GraphQL and the GraphiQL playground with every
// asset, on a dynalite-backed store, built outside the source tree (the SDL is
// inside the bundle, parsed when it was built: schema/ is not read).

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { HttpApiEvent, HttpApiResult } from '../src/lambda.ts'
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from './support/dynalite.ts'
import { graphqlEvent, httpApiEvent, startFakeSsm } from './support/lambda-events.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
// Outside the source tree: the bundle must run on what it ships alone (the zip holds nothing else).
const outDir = mkdtempSync(join(tmpdir(), 'lambda-bundle-'))
const TOKEN = 'bundle-test-token'

type Handler = (event: HttpApiEvent, context: object) => Promise<HttpApiResult>

describe('the Lambda bundle', () => {
  let dynamo: LocalDynamo
  let ssm: Awaited<ReturnType<typeof startFakeSsm>>
  let handler: Handler
  const savedEnv = { ...process.env }

  before(async () => {
    const built = spawnSync(process.execPath, ['scripts/build-lambda.mjs', '--out', outDir], { cwd: root, encoding: 'utf8' })
    assert.equal(built.status, 0, built.stderr)
    dynamo = await startDynalite()
    const table = await dynamo.freshTable('bundle')
    const tokensArn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:bundle-tokens'
    ssm = await startFakeSsm({
      [`/aws/reference/secretsmanager/${tokensArn}`]: JSON.stringify({
        tokens: [{ name: 'bundle', role: 'viewer', sha256: createHash('sha256').update(TOKEN).digest('hex') }],
      }),
    })
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_REGION: LOCAL_REGION,
      STORE_URL: `dynamodb:${table}`,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      // The tokens come through the bundled SSM client (a lazy chunk), as in production.
      AUTH_TOKENS_SECRET_ARN: tokensArn,
      AWS_ENDPOINT_URL_SSM: ssm.endpoint,
      LOG_LEVEL: 'silent',
    })
    delete process.env.LOCAL_NODE_PATH
    handler = ((await import(pathToFileURL(join(outDir, 'lambda.mjs')).href)) as { handler: Handler }).handler
  })

  after(async () => {
    process.env = savedEnv
    await dynamo?.close()
    await ssm?.close()
    await rm(outDir, { recursive: true, force: true })
  })

  it('contains no native module and loads neither the Kubernetes client nor a SQLite driver at start', async () => {
    // In no output file, lazy chunks included. (cpu-features stays as ssh2's
    // optional require inside a try: absent on Lambda, ssh2 does without.)
    const files = ['lambda.mjs', ...(await readdir(join(outDir, 'chunks'))).filter((f) => f.endsWith('.mjs')).map((f) => join('chunks', f))]
    for (const file of files) {
      const text = await readFile(join(outDir, file), 'utf8')
      assert.ok(!text.includes('"better-sqlite3"') && !text.includes("'better-sqlite3'"), `${file} refers to better-sqlite3`)
    }
    type Output = { entryPoint?: string; inputs: Record<string, unknown>; imports: Array<{ path: string; kind: string }> }
    const meta = JSON.parse(await readFile(join(outDir, 'meta.json'), 'utf8')) as { outputs: Record<string, Output> }
    // What a cold start loads: lambda.mjs and every chunk it imports statically
    // (esbuild marks each import() target as an entry point too, so those are not it).
    const mainPath = Object.keys(meta.outputs).find((p) => p.endsWith('/lambda.mjs'))!
    const loaded = new Set<string>()
    const visit = (path: string): void => {
      if (loaded.has(path) || !meta.outputs[path]) return
      loaded.add(path)
      for (const i of meta.outputs[path].imports) if (i.kind === 'import-statement') visit(i.path)
    }
    visit(mainPath)
    const loadedAtStart = [...loaded].flatMap((p) => Object.keys(meta.outputs[p]!.inputs))
    assert.ok(loadedAtStart.some((p) => p.endsWith('src/lambda.ts')), 'the walk starts at the handler')
    assert.ok(!loadedAtStart.some((p) => p.includes('@kubernetes/client-node')), 'the Kubernetes client is a lazy chunk')
    assert.ok(!loadedAtStart.some((p) => p.includes('@aws-sdk/client-ssm')), 'the SSM client is a lazy chunk')
    assert.ok(!loadedAtStart.some((p) => p.includes('node_modules/ssh2/')), 'ssh2 is a lazy chunk (loaded when a node is first contacted)')
    assert.ok(!Object.values(meta.outputs).some((o) => Object.keys(o.inputs).some((p) => p.endsWith('src/store/sqlite.ts'))), 'the SQLite store is not bundled')
    assert.ok((await readdir(join(outDir, 'chunks'))).length > 0)
    // What the first request adds: the DynamoDB store's chunk and what it imports statically.
    const storeChunk = Object.keys(meta.outputs).find((p) => meta.outputs[p]!.entryPoint?.endsWith('src/store/dynamodb.ts'))
    assert.ok(storeChunk, 'the DynamoDB store is a chunk of its own')
    visit(storeChunk)
    const loadedByFirstRequest = [...loaded].flatMap((p) => Object.keys(meta.outputs[p]!.inputs))
    // scripts/build-lambda.mjs: the SDK's ES build, whose credential providers other than the environment's are lazy chunks.
    assert.ok(loadedByFirstRequest.some((p) => p.includes('@aws-sdk/client-dynamodb/dist-es/')), 'the DynamoDB client is its ES module build')
    assert.ok(!loadedByFirstRequest.some((p) => p.includes('@aws-sdk/client-dynamodb/dist-cjs/')), 'and not its CommonJS build as well')
    for (const provider of ['credential-provider-sso', 'credential-provider-ini', 'credential-provider-process', 'nested-clients']) {
      assert.ok(!loadedByFirstRequest.some((p) => p.includes(`@aws-sdk/${provider}/`)), `${provider} is not loaded by a cold start with credentials in the environment`)
    }
    // No /docs on Lambda (API Gateway does not route it): the OpenAPI plugins stay out of the cold start.
    for (const plugin of ['@fastify/swagger/', '@fastify/swagger-ui/']) {
      assert.ok(!loadedAtStart.some((p) => p.includes(`node_modules/${plugin}`)), `${plugin} is not loaded at start`)
    }
    // scripts/build-lambda.mjs: zod's English messages only.
    assert.ok(loadedAtStart.some((p) => p.endsWith('zod/v4/locales/en.js')))
    assert.ok(!loadedAtStart.some((p) => /zod\/v4\/locales\/(?!en\.js)/.test(p)), 'no other zod locale')
  })

  it('answers a REST route as the first request of the container (its schemas compiled on that request)', async () => {
    const nodes = await handler(httpApiEvent('GET', '/api/v1/nodes', { headers: { authorization: `Bearer ${TOKEN}` } }), {})
    assert.equal(nodes.statusCode, 200, nodes.body)
    assert.deepEqual(JSON.parse(nodes.body), [])
    // API Gateway gives the query parsed as well, and that is what the adapter reads.
    const invalidEvent = Object.assign(httpApiEvent('GET', '/api/v1/nodes/n1/staticpods?maxAgeSeconds=soon', { headers: { authorization: `Bearer ${TOKEN}` } }), { queryStringParameters: { maxAgeSeconds: 'soon' } })
    const invalid = await handler(invalidEvent, {})
    assert.equal(invalid.statusCode, 400, invalid.body)
    assert.equal(JSON.parse(invalid.body).error.code, 'VALIDATION_FAILED')
  })

  it('answers GET /healthz and a GraphQL query through the bundled handler', async () => {
    const health = await handler(httpApiEvent('GET', '/healthz'), {})
    assert.equal(health.statusCode, 200, health.body)
    const query = await handler(graphqlEvent('{ nodes { name } }', {}, TOKEN), {})
    assert.equal(query.statusCode, 200, query.body)
    assert.deepEqual(JSON.parse(query.body), { data: { nodes: [] } })
  })

  it('serves the GraphiQL page and every asset it links, from the bundle', async () => {
    const page = await handler(httpApiEvent('GET', '/graphiql'), {})
    assert.equal(page.statusCode, 200, page.body)
    const linked = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    assert.ok(linked.length >= 4, linked.join(' '))
    for (const asset of linked) {
      const response = await handler(httpApiEvent('GET', asset), {})
      assert.equal(response.statusCode, 200, `${asset}: ${response.body.slice(0, 200)}`)
      assert.ok(response.body.length > 1000, asset)
      // Shipped inside the bundle, not found through the repository's node_modules above it (the zip has none).
      const file = asset.split('/').pop() as string
      const shipped = await readdir(join(outDir, 'node_modules'), { recursive: true })
      assert.ok(shipped.some((f) => String(f).endsWith(`/${file}`)), `${file} is in the bundle's node_modules (scripts/build-lambda.mjs RUNTIME_FILES)`)
    }
  })
})
