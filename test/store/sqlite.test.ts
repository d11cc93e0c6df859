import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import type { Database as SqliteDatabase } from 'better-sqlite3'
import { isServiceError } from '../../src/errors.ts'
import { MIGRATIONS, StoreSchemaTooNewError, migrate, schemaVersion } from '../../src/store/sqlite-schema.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'
import { podKeyString } from '../../src/store/store.ts'
import type { PodKey, Store } from '../../src/store/store.ts'
import { auditEvent, newRevision, nodeRecord, storeContract } from './contract.ts'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
const appendChild = fileURLToPath(new URL('./fixtures/append-revisions.ts', import.meta.url))

async function freshDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'staticpod-store-'))
}

storeContract('sqlite', async () => {
  const dir = await freshDir()
  // A nested path also proves that open creates parent directories.
  const path = join(dir, 'state', 'store.db')
  const opened: Store[] = [SqliteStore.open(path)]
  return {
    store: opened[0]!,
    reopen: async () => {
      const store = SqliteStore.open(path)
      opened.push(store)
      return store
    },
    cleanup: async () => {
      for (const store of opened) await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

/** The connection behind a store, for checks the Store interface has no reason to offer. */
function connectionOf(store: SqliteStore): SqliteDatabase {
  return (store as unknown as { db: SqliteDatabase }).db
}

const apiserver: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'kube-apiserver' }

interface ChildRun {
  revisions: number[]
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
}

interface AppendChild {
  /** Resolves when the child has opened the store and waits for start(). */
  ready: Promise<void>
  /** Lets a child started with waitForStart begin appending. */
  start: () => void
  done: Promise<ChildRun>
}

/**
 * Runs fixtures/append-revisions.ts. With killAfter, sends SIGKILL once that
 * many revision lines have arrived. Every wait is bounded by timeoutMs.
 */
function appendChildProcess(
  dbPath: string,
  opts: { podName: string; maxAppends: number; maxMs: number; killAfter?: number; timeoutMs: number; waitForStart?: boolean; pauseMs?: number },
): AppendChild {
  const args = [appendChild, dbPath, opts.podName, String(opts.maxAppends), String(opts.maxMs)]
  args.push(opts.waitForStart ? 'wait' : 'nowait', String(opts.pauseMs ?? 0))
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] })
  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => (markReady = resolve))
  const done = new Promise<ChildRun>((resolve, reject) => {
    const revisions: number[] = []
    let pending = ''
    let stderr = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`append child did not finish within ${opts.timeoutMs} ms; stderr: ${stderr}`))
    }, opts.timeoutMs)
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) {
        if (line === 'ready') {
          markReady()
          continue
        }
        revisions.push(Number(line))
        if (opts.killAfter !== undefined && revisions.length === opts.killAfter) child.kill('SIGKILL')
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      markReady() // a child that died before `ready` must not hang the caller
      resolve({ revisions, code, signal, stderr })
    })
  })
  return { ready, start: () => child.stdin.end('go\n'), done }
}

describe('SqliteStore', () => {
  let dir: string
  before(async () => {
    dir = await freshDir()
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('opens the file in WAL mode with synchronous = FULL, foreign keys and a busy timeout', async () => {
    const path = join(dir, 'pragmas.db')
    const store = SqliteStore.open(path)
    try {
      const db = connectionOf(store)
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
      assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL')
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1)
      assert.ok((db.pragma('busy_timeout', { simple: true }) as number) >= 1000)
      // WAL is a property of the file: another connection sees it too.
      const other = new Database(path, { readonly: true })
      assert.equal(other.pragma('journal_mode', { simple: true }), 'wal')
      other.close()
    } finally {
      await store.close()
    }
  })

  it('opens an in-memory store', async () => {
    const store = SqliteStore.open(':memory:')
    await store.createNode(nodeRecord('cp-1'))
    assert.equal((await store.listNodes()).length, 1)
    await store.close()
    await store.close() // idempotent
  })

  it('rejects calls after close', async () => {
    const store = SqliteStore.open(':memory:')
    await store.close()
    await assert.rejects(store.ping())
  })

  it('rejects an audit `before` that is neither an instant nor an event id', async () => {
    const store = SqliteStore.open(':memory:')
    try {
      await assert.rejects(store.listAudit({ before: 'yesterday', limit: 5 }), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED')
      await assert.rejects(store.listAudit({ limit: -1 }), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED')
      // A non-canonical instant means the same instant.
      await store.appendAudit(auditEvent('2024-05-01T12:00:00.000Z'))
      assert.equal((await store.listAudit({ before: '2024-05-01T14:00:00.001+02:00', limit: 5 })).length, 1)
      assert.equal((await store.listAudit({ before: '2024-05-01T14:00:00+02:00', limit: 5 })).length, 0)
    } finally {
      await store.close()
    }
  })

  describe('migrations', () => {
    it('migrates a file at user_version 0 with no tables', async () => {
      const path = join(dir, 'v0.db')
      const raw = new Database(path)
      assert.equal(schemaVersion(raw), 0)
      raw.close()

      const store = SqliteStore.open(path)
      assert.equal(schemaVersion(connectionOf(store)), MIGRATIONS.length)
      await store.createNode(nodeRecord('cp-1'))
      await store.appendRevision(newRevision(apiserver))
      await store.close()

      // Opening it again applies nothing and keeps the data.
      const again = SqliteStore.open(path)
      assert.equal(schemaVersion(connectionOf(again)), MIGRATIONS.length)
      assert.equal((await again.listNodes()).length, 1)
      await again.close()
    })

    it('refuses a file from a newer schema with a message that says so, and leaves it alone', async () => {
      const path = join(dir, 'future.db')
      const future = MIGRATIONS.length + 1
      const raw = new Database(path)
      raw.pragma(`user_version = ${future}`)
      raw.close()

      assert.throws(
        () => SqliteStore.open(path),
        (err) =>
          err instanceof StoreSchemaTooNewError &&
          err.fileVersion === future &&
          err.message.includes(path) &&
          /newer release/.test(err.message),
      )
      const check = new Database(path, { readonly: true })
      assert.equal(schemaVersion(check), future)
      check.close()
    })

    it('applies only the steps a file lacks, each with its version bump', async () => {
      const path = join(dir, 'steps.db')
      const store = SqliteStore.open(path)
      await store.createNode(nodeRecord('cp-1'))
      await store.close()

      const db = new Database(path)
      try {
        migrate(db, path, [...MIGRATIONS, 'CREATE TABLE later_release (x TEXT)'])
        assert.equal(schemaVersion(db), MIGRATIONS.length + 1)
        assert.equal((db.prepare('SELECT count(*) AS n FROM nodes').get() as { n: number }).n, 1)
        // Running it again is a no-op (a step applied twice would fail: the table exists).
        migrate(db, path, [...MIGRATIONS, 'CREATE TABLE later_release (x TEXT)'])
        assert.equal(schemaVersion(db), MIGRATIONS.length + 1)
      } finally {
        db.close()
      }
    })

    it('a failing step leaves the file at the version before it, with nothing of the step applied', async () => {
      const path = join(dir, 'broken-step.db')
      const db = new Database(path)
      try {
        const steps = [...MIGRATIONS, 'CREATE TABLE half_done (x TEXT); CREATE TABLE syntax error here']
        assert.throws(() => migrate(db, path, steps))
        assert.equal(schemaVersion(db), MIGRATIONS.length)
        const halfDone = db.prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'").get()
        assert.equal(halfDone, undefined)
      } finally {
        db.close()
      }
    })
  })

  describe('several connections to one file', () => {
    it('two SqliteStore instances appending to one key never pick the same number', async () => {
      const path = join(dir, 'two-connections.db')
      const first = SqliteStore.open(path)
      const second = SqliteStore.open(path)
      try {
        const appended = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? first : second).appendRevision(newRevision(apiserver))),
        )
        assert.deepEqual(
          appended.map((r) => r.revision).sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => i + 1),
        )
        // Neither caches the newest number: each sees the other's appends at once.
        await assert.rejects(first.appendRevision(newRevision(apiserver), 39), (err) => isServiceError(err) && err.code === 'CONFLICT')
        assert.equal((await second.appendRevision(newRevision(apiserver), 40)).revision, 41)
        assert.equal((await first.latestRevisions([apiserver])).get(podKeyString(apiserver))?.revision, 41)
      } finally {
        await first.close()
        await second.close()
      }
    })

    it('two processes appending to one key at the same time get distinct consecutive numbers', { timeout: 60_000 }, async () => {
      const path = join(dir, 'two-processes.db')
      // Create and migrate the file first so both children start appending at once.
      await SqliteStore.open(path).close()
      const children = [0, 1].map(() =>
        appendChildProcess(path, { podName: 'kube-apiserver', maxAppends: 150, maxMs: 20_000, timeoutMs: 45_000, waitForStart: true, pauseMs: 1 }),
      )
      await Promise.all(children.map((c) => c.ready))
      for (const c of children) c.start()
      const runs = await Promise.all(children.map((c) => c.done))
      for (const run of runs) assert.equal(run.code, 0, run.stderr)
      const numbers = runs.flatMap((r) => r.revisions).sort((a, b) => a - b)
      assert.ok(runs.every((r) => r.revisions.length === 150))
      // They really ran at the same time: each got numbers inside the other's range.
      const [a, b] = runs as [ChildRun, ChildRun]
      assert.ok(a.revisions[0]! < b.revisions.at(-1)! && b.revisions[0]! < a.revisions.at(-1)!, 'the appends interleaved')
      assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, i) => i + 1))

      const store = SqliteStore.open(path)
      try {
        const key: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'kube-apiserver' }
        assert.equal((await store.latestRevisions([key])).get(podKeyString(key))?.revision, numbers.length)
        // Each number belongs to the process that printed it.
        for (const [i, run] of runs.entries()) {
          const other = runs[1 - i]!
          for (const n of run.revisions.slice(0, 20)) {
            const record = await store.getRevision(key, n)
            assert.ok(record?.actor?.startsWith('pid-'))
            assert.ok(!other.revisions.includes(n))
          }
        }
      } finally {
        await store.close()
      }
    })
  })

  it('keeps every revision whose append resolved when the process is killed with SIGKILL', { timeout: 60_000 }, async () => {
    const path = join(dir, 'kill-9.db')
    const run = await appendChildProcess(path, { podName: 'etcd', maxAppends: 5000, maxMs: 20_000, killAfter: 60, timeoutMs: 45_000 }).done
    assert.equal(run.signal, 'SIGKILL', `the child was to be killed, it exited with ${run.code}: ${run.stderr}`)
    assert.ok(run.revisions.length >= 60)
    assert.deepEqual(run.revisions, Array.from({ length: run.revisions.length }, (_, i) => i + 1))
    assert.ok(existsSync(`${path}-wal`), 'the killed process leaves its WAL behind')

    const store = SqliteStore.open(path)
    try {
      const key: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'etcd' }
      for (const n of run.revisions) {
        const record = await store.getRevision(key, n)
        assert.ok(record, `revision ${n} was reported and must be there`)
        assert.ok(record.manifest.endsWith(`append ${n - 1}\n`))
      }
      const latest = (await store.latestRevisions([key])).get(podKeyString(key))?.revision ?? 0
      // The append in flight at the kill may or may not have committed; nothing else may be missing.
      assert.ok(latest >= run.revisions.length && latest <= run.revisions.length + 1, `latest ${latest}`)
      assert.deepEqual(connectionOf(store).pragma('integrity_check'), [{ integrity_check: 'ok' }])
      assert.equal((await store.appendRevision(newRevision(key), latest)).revision, latest + 1)
    } finally {
      await store.close()
    }
  })
})
