// The real process, as `npm start` runs it (node --import tsx src/server.ts), on its
// embedded defaults in a fresh directory: real HTTP on 127.0.0.1.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from './helper.ts'
import { startLiveServer } from './security/live-server.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx')
const SERVER = join(ROOT, 'src', 'server.ts')

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

function start(t: TestContext, cwd: string, env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(TSX, [SERVER], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  return { child, output: () => output, exited }
}

async function waitForHttp(url: string, deadlineMs: number): Promise<Response> {
  const until = Date.now() + deadlineMs
  for (;;) {
    try {
      return await fetch(url)
    } catch (err) {
      if (Date.now() > until) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

describe('the server process', () => {
  it('serves GraphiQL and GraphQL on the embedded defaults, with ./data, and stops cleanly on SIGTERM', async (t) => {
    const cwd = await makeTempDir()
    t.after(() => rm(cwd, { recursive: true, force: true }))
    const port = await freePort()
    const { child, output, exited } = start(t, cwd, { PORT: String(port), LOG_LEVEL: 'info' })
    const graphiql = await waitForHttp(`http://127.0.0.1:${port}/graphiql`, 20_000)
    assert.equal(graphiql.status, 200)
    assert.match(await graphiql.text(), /graphiql/i)
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ nodes { name staticPodPath } }' }),
    })
    const body = (await res.json()) as { data: { nodes: Array<{ name: string; staticPodPath: string }> } }
    assert.deepEqual(body.data.nodes, [{ name: 'local', staticPodPath: join(cwd, 'data', 'manifests') }])
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200)
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200)
    assert.ok(existsSync(join(cwd, 'data', 'staticpod-api.db')))
    assert.ok(existsSync(join(cwd, 'data', 'manifests')))
    assert.match(output(), /GraphiQL at http:\/\/127\.0\.0\.1:\d+\/graphiql/)
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  })

  it('without tokens, the start warns in words a reader can read: nothing of the message is masked', async (t) => {
    // AUTH_TOKENS empty is no tokens (src/config.ts); everything else as npm start runs it.
    const server = await startLiveServer({ AUTH_TOKENS: '' })
    t.after(() => server.stop())
    const lines = server
      .output()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: number; msg: string })
    const warning = lines.find((line) => line.msg.startsWith('no AUTH_TOKENS_FILE'))
    assert.ok(warning, server.output())
    assert.equal(warning.level, 40)
    assert.equal(warning.msg, 'no AUTH_TOKENS_FILE or AUTH_TOKENS: every caller is the anonymous admin (served on a loopback address only)')
    assert.ok(!server.output().includes('[REDACTED]'), server.output())
    // And a caller without a token is served.
    const res = await fetch(`${server.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ nodes { name } }' }),
    })
    assert.deepEqual(((await res.json()) as { data: unknown }).data, { nodes: [{ name: 'local' }] })
  })

  it('HOST=0.0.0.0 without tokens refuses to start, with one line saying why', async (t) => {
    const cwd = await makeTempDir()
    t.after(() => rm(cwd, { recursive: true, force: true }))
    const { output, exited } = start(t, cwd, { HOST: '0.0.0.0', PORT: String(await freePort()) })
    assert.equal(await exited, 1)
    const lines = output().trim().split('\n')
    assert.equal(lines.length, 1, output())
    assert.match(lines[0] as string, /^staticpod-api: Invalid HOST: 0\.0\.0\.0 is not a loopback address.*AUTH_TOKENS/)
  })

  it('a bad variable stops the start with one line naming it', async (t) => {
    const cwd = await makeTempDir()
    t.after(() => rm(cwd, { recursive: true, force: true }))
    const { output, exited } = start(t, cwd, { PORT: 'eighty' })
    assert.equal(await exited, 1)
    const lines = output().trim().split('\n')
    assert.equal(lines.length, 1, output())
    assert.match(lines[0] as string, /^staticpod-api: Invalid PORT: .*eighty/)
  })
})
