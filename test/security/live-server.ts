// The service as `npm start` runs it (same node flags, so the same heap limit),
// in its own process on 127.0.0.1 with tokens configured: what an attacker on
// the network reaches. Its RSS is read from /proc; it is stopped by PID, and
// it stops itself after a while in case the test process dies first.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, rm, mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from '../helper.ts'
import { TOKENS_DOCUMENT } from '../http/tokens.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The flags of package.json's start script. */
const START_FLAGS = ['--max-old-space-size=1024', '--max-semi-space-size=8', '--import', 'tsx']

export interface LiveServer {
  base: string
  pid: number
  dir: string
  manifests: string
  storeFile: string
  /** Resident set size of the server process, bytes. */
  rss(): Promise<number>
  alive(): boolean
  /** What the server wrote to stdout and stderr. */
  output(): string
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  return typeof address === 'object' && address ? address.port : 0
}

export async function startLiveServer(env: Record<string, string> = {}): Promise<LiveServer> {
  const dir = await makeTempDir('staticpod-api-security-')
  const manifests = join(dir, 'manifests')
  await mkdir(manifests)
  const port = await freePort()
  const storeFile = join(dir, 'store.db')
  const child: ChildProcess = spawn(process.execPath, [...START_FLAGS, 'src/server.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      STORE_URL: `sqlite:${storeFile}`,
      LOCAL_NODE_PATH: manifests,
      LOCAL_NODE_STATE_DIR: join(dir, 'state'),
      LOCAL_KUBELET_HEALTHZ_URL: 'http://127.0.0.1:9/healthz',
      AUTH_TOKENS: TOKENS_DOCUMENT,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk: Buffer) => {
    // The log is read by tests (its size counts); keep the last 4 MB of it.
    output = (output + chunk.toString('utf8')).slice(-4 * 1024 * 1024)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let exited = false
  child.once('exit', () => (exited = true))
  // A server outliving its test would hold a port and a directory: at most five minutes.
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 300_000)
  watchdog.unref()
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`the server exited at start:\n${output}`)
    try {
      if ((await fetch(`${base}/healthz`)).ok) break
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error(`the server did not answer /healthz within 30 s:\n${output}`)
    await sleep(100)
  }
  return {
    base,
    pid: child.pid as number,
    dir,
    manifests,
    storeFile,
    async rss() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
      return Number(kb) * 1024
    },
    alive: () => !exited,
    output: () => output,
    async stop() {
      clearTimeout(watchdog)
      if (!exited) {
        child.kill('SIGTERM')
        for (let i = 0; i < 50 && !exited; i++) await sleep(100)
        if (!exited) child.kill('SIGKILL')
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
