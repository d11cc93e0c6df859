// serverless.yml run by serverless-offline (under osls): the HTTP API routes,
// the handler path and the function's environment, with one GraphQL request
// through them, on the bundle of scripts/build-lambda.mjs and a dynalite store.
// Skipped, with the reason printed, only if serverless-offline cannot start
// on this machine.

import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from './support/dynalite.ts'
import { startFakeSsm } from './support/lambda-events.ts'
import { createTable } from '../src/store/dynamodb-table.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const STAGE = 'offline'
const TOKEN = 'offline-test-token'
const TOKENS_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:offline-tokens'
const SSH_KEY_PARAMETER = '/staticpod-api/offline/ssh-key'
const START_TIMEOUT_MS = 60_000

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('serverless-offline', { timeout: 120_000 }, () => {
  let dynamo: LocalDynamo
  let ssm: Awaited<ReturnType<typeof startFakeSsm>>
  let offline: ChildProcess | undefined
  let httpPort: number
  let output = ''
  let cannotStart: string | null = null
  let keyDir: string

  before(async () => {
    const built = spawnSync(process.execPath, ['scripts/build-lambda.mjs'], { cwd: root, encoding: 'utf8' })
    assert.equal(built.status, 0, built.stderr)
    dynamo = await startDynalite()
    const admin = dynamo.client()
    await createTable(admin, `staticpod-api-${STAGE}`)
    admin.destroy()
    keyDir = await mkdtemp(join(tmpdir(), 'staticpod-offline-'))
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'id')])
    ssm = await startFakeSsm({
      // Loaded and checked at cold start; no node is registered, so it is never used.
      [SSH_KEY_PARAMETER]: await readFile(join(keyDir, 'id'), 'utf8'),
      [`/aws/reference/secretsmanager/${TOKENS_SECRET_ARN}`]: JSON.stringify({
        tokens: [{ name: 'offline', role: 'viewer', sha256: createHash('sha256').update(TOKEN).digest('hex') }],
      }),
    })
    httpPort = await freePort()
    const lambdaPort = await freePort()
    offline = spawn(
      process.execPath,
      [
        'node_modules/osls/bin/serverless.js',
        'offline',
        'start',
        // The function gets this process's environment (DYNAMODB_ENDPOINT, the SSM endpoint), not only AWS_*.
        '--localEnvironment',
        '--stage', STAGE,
        '--host', '127.0.0.1',
        '--httpPort', String(httpPort),
        '--lambdaPort', String(lambdaPort),
        '--param=subnetIds=subnet-offline',
        '--param=securityGroupIds=sg-offline',
        `--param=sshKeyParameter=${SSH_KEY_PARAMETER}`,
        `--param=authTokensSecretArn=${TOKENS_SECRET_ARN}`,
        '--param=logLevel=silent',
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
          AWS_REGION: LOCAL_REGION,
          AWS_ENDPOINT_URL_SSM: ssm.endpoint,
          DYNAMODB_ENDPOINT: dynamo.endpoint,
          SLS_TELEMETRY_DISABLED: '1',
          SLS_NOTIFICATIONS_MODE: 'off',
        },
      },
    )
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
      const onData = (chunk: Buffer) => {
        output += chunk.toString('utf8')
        if (output.includes(`127.0.0.1:${httpPort}`) && /Server ready|listening on|\u2502\s+GET\s+\|/.test(output)) {
          clearTimeout(timer)
          resolve()
        }
      }
      offline!.stdout!.on('data', onData)
      offline!.stderr!.on('data', onData)
      offline!.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`exited with ${code}`))
      })
    })
    try {
      await ready
    } catch (err) {
      cannotStart = `serverless-offline could not start: ${(err as Error).message}\n${output.slice(-2000)}`
    }
  })

  after(async () => {
    if (offline && offline.exitCode === null) {
      const exited = new Promise((resolve) => offline!.once('exit', resolve))
      offline.kill('SIGTERM')
      const timer = setTimeout(() => offline!.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    await ssm?.close()
    await dynamo?.close()
    if (keyDir) await rm(keyDir, { recursive: true, force: true })
  })

  it('answers a GraphQL query through the HTTP API route to the bundled handler', async () => {
    // serverless-offline is a dev dependency (npm ci installs it): not starting is a failure, never a skip.
    if (cannotStart) assert.fail(cannotStart)
    let response: Response | undefined
    // The route table prints before the server accepts; retry briefly.
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        response = await fetch(`http://127.0.0.1:${httpPort}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify({ query: '{ nodes { name } }' }),
        })
        break
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    assert.ok(response, `no answer from serverless-offline\n${output.slice(-2000)}`)
    const text = await response.text()
    assert.equal(response.status, 200, `${text}\n${output.slice(-2000)}`)
    assert.deepEqual(JSON.parse(text), { data: { nodes: [] } })
  })
})
