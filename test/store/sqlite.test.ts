import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
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
import { podKeyString } from '../../src/domain.ts'
import type { PodKey } from '../../src/domain.ts'
import type { Store } from '../../src/store/store.ts'
import { auditEvent, newEvent, newRevision, nodeObservation, nodeRecord, storeContract } from './contract.ts'

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
async function waitUntil(condition: () => boolean, what = 'the condition'): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(condition(), `${what} within 1 s`)
}

function connectionOf(store: SqliteStore): SqliteDatabase {
  return (store as unknown as { db: SqliteDatabase }).db
}

const apiserver: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'kube-apiserver' }

/**
 * How many commits the WAL of the file at `path` holds, read from the file
 * itself: the last frame of a commit records the database size in pages,
 * every other frame 0. Counts the frames of the log's current generation (the
 * salts in the header); call it only while no checkpoint can restart the log
 * (wal_autocheckpoint = 0).
 */
function walCommits(path: string): number {
  const wal = readFileSync(`${path}-wal`)
  if (wal.length < 32) return 0
  const pageSize = wal.readUInt32BE(8)
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)]
  let commits = 0
  for (let frame = 32; frame + 24 + pageSize <= wal.length; frame += 24 + pageSize) {
    if (wal.readUInt32BE(frame + 8) !== salts[0] || wal.readUInt32BE(frame + 12) !== salts[1]) break
    if (wal.readUInt32BE(frame + 4) !== 0) commits++
  }
  return commits
}

/** A store at `path` whose WAL is never checkpointed, so walCommits can count its commits. */
function openCounted(path: string): SqliteStore {
  const store = SqliteStore.open(path)
  connectionOf(store).pragma('wal_autocheckpoint = 0')
  return store
}

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

  it('opens the file in WAL mode with synchronous = NORMAL (it flushes the WAL itself), foreign keys and a busy timeout', async () => {
    const path = join(dir, 'pragmas.db')
    const store = SqliteStore.open(path)
    try {
      const db = connectionOf(store)
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
      assert.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL')
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

  it('a write resolves only once the WAL is flushed; commits made during a flush share the next one; a failed flush fails the writes', async () => {
    const path = join(dir, 'flush.db')
    const flushes: Array<{ path: string; size: number; done: (err?: Error) => void }> = []
    const store = SqliteStore.open(path, {
      flushWal: (wal) => new Promise<void>((resolve, reject) => flushes.push({ path: wal, size: statSync(wal).size, done: (err) => (err ? reject(err) : resolve()) })),
    })
    try {
      const settledState = (promise: Promise<unknown>): Promise<string> => Promise.race([promise.then(() => 'resolved', () => 'rejected'), new Promise<string>((r) => setTimeout(() => r('pending'), 50))])
      const first = store.createNode(nodeRecord('flush-1'))
      await waitUntil(() => flushes.length === 1)
      assert.equal(flushes[0]!.path, `${path}-wal`)
      assert.ok(flushes[0]!.size > 0, 'the commit is in the WAL when its flush starts')
      assert.equal(await settledState(first), 'pending', 'not resolved before its commit is flushed')
      // Committed meanwhile: they wait for a flush that starts after their commit, and share it.
      const second = store.createNode(nodeRecord('flush-2'))
      const third = store.createNode(nodeRecord('flush-3'))
      await new Promise((r) => setTimeout(r, 20))
      assert.equal(flushes.length, 1, 'one flush at a time')
      flushes[0]!.done()
      assert.equal(await settledState(first), 'resolved')
      await waitUntil(() => flushes.length === 2)
      assert.equal(await settledState(second), 'pending')
      flushes[1]!.done()
      assert.deepEqual([await settledState(second), await settledState(third)], ['resolved', 'resolved'])
      const failing = store.createNode(nodeRecord('flush-4'))
      await waitUntil(() => flushes.length === 3)
      flushes[2]!.done(new Error('EIO: the disk failed'))
      await assert.rejects(failing, /EIO/)
    } finally {
      const closing = store.close()
      for (const flush of flushes) flush.done()
      await closing
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

  describe('events', () => {
    it('putObservationIf with expectedVersion null matches a row stored before versions existed', async () => {
      const store = SqliteStore.open(':memory:')
      try {
        await store.putObservation(nodeObservation('cp-1'))
        connectionOf(store).exec("UPDATE observations SET version = NULL WHERE node = 'cp-1'")
        assert.deepEqual(await store.putObservationIf(nodeObservation('cp-1'), 'some version', []), { stored: false })
        const newer = nodeObservation('cp-1', { pods: [] })
        const result = await store.putObservationIf(newer, null, [newEvent('cp-1')])
        assert.ok(result.stored && result.events.length === 1)
        assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), newer)
        assert.notEqual((await store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')?.version, null)
      } finally {
        await store.close()
      }
    })

    it('putObservationIf commits the observation and its events together: an event that fails leaves the observation as it was', async () => {
      const store = SqliteStore.open(':memory:')
      try {
        const before = nodeObservation('cp-1')
        await store.putObservation(before)
        const version = (await store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')!.version!
        connectionOf(store).exec(`CREATE TEMP TRIGGER poison BEFORE INSERT ON main.events WHEN new.message = 'poison'
          BEGIN SELECT RAISE(ABORT, 'poisoned event'); END`)
        await assert.rejects(store.putObservationIf(nodeObservation('cp-1', { pods: [] }), version, [newEvent('cp-1'), newEvent('cp-1', { message: 'poison' })]), /poisoned event/)
        assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), before)
        assert.equal((await store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')?.version, version)
        assert.deepEqual(await store.listEvents({ limit: 10, order: 'oldest' }), [])
        assert.ok((await store.putObservationIf(nodeObservation('cp-1', { pods: [] }), version, [newEvent('cp-1')])).stored)
      } finally {
        await store.close()
      }
    })

    it('two SqliteStore instances on one file: one putObservationIf wins, ids never repeat, a onceKey is stored once', async () => {
      const path = join(dir, 'events-two-connections.db')
      const first = SqliteStore.open(path)
      const second = SqliteStore.open(path)
      try {
        await first.putObservation(nodeObservation('cp-1'))
        const version = (await second.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')!.version!
        const results = await Promise.all([first, second].map((store, i) => store.putObservationIf(nodeObservation('cp-1', { observedAt: new Date(i).toISOString() }), version, [newEvent('cp-1', { message: `by ${i}` })])))
        assert.equal(results.filter((r) => r.stored).length, 1)

        const appended = await Promise.all(
          Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? first : second).appendEvents([newEvent('cp-1', { message: `e${i}`, ...(i % 4 === 0 && { onceKey: 'shared' }) })])),
        )
        const ids = appended.flat().map((e) => Number(e.id))
        assert.equal(new Set(ids).size, ids.length)
        assert.equal(appended.flat().filter((e) => e.message.startsWith('e') && Number(e.message.slice(1)) % 4 === 0).length, 1, 'the onceKey once')
        assert.equal(ids.length, 40 - 9)
        const listed = await first.listEvents({ limit: 100, order: 'oldest' })
        assert.deepEqual(listed.map((e) => Number(e.id)), [...ids, ...results.flatMap((r) => (r.stored ? r.events.map((e) => Number(e.id)) : []))].sort((a, b) => a - b))
      } finally {
        await first.close()
        await second.close()
      }
    })
  })

  describe('group commit', () => {
    it('writes issued in one turn of the event loop share one commit', async () => {
      const path = join(dir, 'group-commit.db')
      const store = openCounted(path)
      try {
        // Awaited one at a time: one commit each (this also proves the count).
        let before = walCommits(path)
        for (let i = 0; i < 3; i++) await store.appendAudit(auditEvent(new Date(i).toISOString()))
        assert.equal(walCommits(path) - before, 3)

        // A fan-out write: 50 nodes, each a revision, an observation and an
        // audit event in turn. Each step of all nodes commits together.
        const nodes = Array.from({ length: 50 }, (_, i) => `cp-${i}`)
        before = walCommits(path)
        const revisions = await Promise.all(
          nodes.map(async (node) => {
            const revision = await store.appendRevision(newRevision({ ...apiserver, node }))
            await store.putObservation(nodeObservation(node))
            await store.appendAudit(auditEvent(revision.recordedAt, { node }))
            return revision
          }),
        )
        assert.equal(walCommits(path) - before, 3, '3 commits, not 150')
        assert.ok(revisions.every((r) => r.revision === 1))
        assert.equal((await store.latestRevisions(nodes.map((node) => ({ ...apiserver, node })))).size, 50)
        assert.equal((await store.getObservations(nodes)).size, 50)
        assert.equal((await store.listAudit({ limit: 100 })).length, 53)
      } finally {
        await store.close()
      }
    })

    it('a read issued after a write, by any caller, sees it, without a commit of its own', async () => {
      const path = join(dir, 'group-commit-read.db')
      const store = openCounted(path)
      try {
        await store.putObservation(nodeObservation('cp-1'))
        const before = walCommits(path)
        // One caller records a failure and does not wait; another reads right after.
        const unreachable = nodeObservation('cp-1', { agent: { reachable: false, lastContactAt: null, lastError: 'NODE_UNREACHABLE: x', latencyMs: null } })
        const recorded = store.putObservation(unreachable)
        const observations = await store.getObservations(['cp-1'])
        assert.equal(observations.get('cp-1')?.agent.reachable, false)
        await recorded
        assert.equal(walCommits(path) - before, 1)
        // The same for the versioned read behind the observation cache.
        const held = (await store.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')
        const reachableAgain = store.putObservation(nodeObservation('cp-1'))
        const changed = (await store.getObservationsIfChanged(['cp-1'], new Map([['cp-1', held?.version ?? '']]))).get('cp-1')
        assert.equal(changed?.observation?.agent.reachable, true)
        await reachableAgain
      } finally {
        await store.close()
      }
    })

    it('commits at most 500 writes at a time, in the order they were made', async () => {
      const path = join(dir, 'group-commit-cap.db')
      const store = openCounted(path)
      try {
        const before = walCommits(path)
        const appended = await Promise.all(
          Array.from({ length: 1200 }, (_, i) => store.appendRevision(newRevision(apiserver, { manifest: `n: ${i}\n` }))),
        )
        assert.equal(walCommits(path) - before, 3)
        assert.deepEqual(
          appended.map((r) => r.revision),
          Array.from({ length: 1200 }, (_, i) => i + 1),
        )
        assert.equal((await store.getRevision(apiserver, 1200))?.manifest, 'n: 1199\n')
      } finally {
        await store.close()
      }
    })

    it('a failing write undoes only itself and rejects only its own promise; the rest of its commit stands', async () => {
      const path = join(dir, 'group-commit-failure.db')
      const store = openCounted(path)
      const doomed: PodKey = { ...apiserver, node: 'doomed' }
      try {
        await store.createNode(nodeRecord('doomed'))
        await store.appendRevision(newRevision(doomed))
        await store.putObservation(nodeObservation('doomed'))
        // deleteNode removes the node's revisions and observation, then the
        // node; this makes the last step fail after the first two ran.
        connectionOf(store).exec(`CREATE TEMP TRIGGER keep_doomed BEFORE DELETE ON main.nodes WHEN old.name = 'doomed'
          BEGIN SELECT RAISE(ABORT, 'doomed stays'); END`)

        const before = walCommits(path)
        const outcomes = await Promise.allSettled([
          store.appendAudit(auditEvent(new Date(0).toISOString(), { message: 'first' })),
          store.appendRevision(newRevision(apiserver, { hash: null as unknown as string })),
          store.deleteNode('doomed'),
          store.appendRevision(newRevision(apiserver)),
          store.putObservation(nodeObservation('cp-1')),
        ])
        assert.deepEqual(
          outcomes.map((o) => o.status),
          ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled'],
        )
        const reasons = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as { code?: string; message: string }] : []))
        assert.equal(reasons[0]?.code, 'SQLITE_CONSTRAINT_NOTNULL')
        assert.match(reasons[1]?.message ?? '', /doomed stays/)
        assert.equal(walCommits(path) - before, 1)

        // The failed append took no number; the failed delete removed nothing.
        assert.equal((await store.latestRevisions([apiserver])).get(podKeyString(apiserver))?.revision, 1)
        assert.ok(await store.getNode('doomed'))
        assert.ok(await store.getRevision(doomed, 1))
        assert.deepEqual([...(await store.getObservations(['doomed', 'cp-1'])).keys()].sort(), ['cp-1', 'doomed'])
        assert.deepEqual((await store.listAudit({ limit: 10 })).map((e) => e.message), ['first'])
      } finally {
        await store.close()
      }
    })

    it('when the commit itself fails, every write of it rejects with that error and none is kept', async () => {
      const path = join(dir, 'group-commit-busy.db')
      const store = SqliteStore.open(path)
      const blocker = new Database(path)
      try {
        connectionOf(store).pragma('busy_timeout = 20')
        blocker.exec('BEGIN IMMEDIATE')
        const outcomes = await Promise.allSettled([
          store.createNode(nodeRecord('cp-1')),
          store.appendRevision(newRevision(apiserver)),
          store.appendAudit(auditEvent(new Date(0).toISOString())),
        ])
        const reasons = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as { code?: string }) : undefined))
        assert.equal(reasons[0]?.code, 'SQLITE_BUSY')
        assert.ok(reasons.every((r) => r === reasons[0]), 'one error for all')
        blocker.exec('ROLLBACK')

        assert.deepEqual(await store.listNodes(), [])
        assert.equal((await store.appendRevision(newRevision(apiserver))).revision, 1)
      } finally {
        blocker.close()
        await store.close()
      }
    })

    it('close commits the writes still queued before it closes the file', async () => {
      const path = join(dir, 'group-commit-close.db')
      const store = SqliteStore.open(path)
      const queued = [
        store.createNode(nodeRecord('cp-1')),
        store.appendRevision(newRevision(apiserver)),
        store.appendAudit(auditEvent(new Date(0).toISOString())),
      ]
      await store.close()
      const [, revision] = await Promise.all(queued)
      assert.equal((revision as { revision: number }).revision, 1)
      await assert.rejects(store.putObservation(nodeObservation('cp-1')), 'writes after close fail')

      const reopened = SqliteStore.open(path)
      try {
        assert.deepEqual((await reopened.listNodes()).map((n) => n.name), ['cp-1'])
        assert.ok(await reopened.getRevision(apiserver, 1))
        assert.equal((await reopened.listAudit({ limit: 10 })).length, 1)
        assert.equal((await reopened.getObservations(['cp-1'])).size, 0)
      } finally {
        await reopened.close()
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

describe('what the SQLite store holds between reads (node list, observation versions) follows every connection on the file', () => {
  it("another connection's node, observation and removal are seen at the next read; this one's too", async (t) => {
    const dir = await freshDir()
    const path = join(dir, 'store.db')
    const reader = SqliteStore.open(path)
    const writer = SqliteStore.open(path)
    t.after(async () => {
      await reader.close()
      await writer.close()
      await rm(dir, { recursive: true, force: true })
    })

    await writer.createNode(nodeRecord('cp-1'))
    assert.deepEqual((await reader.listNodes()).map((n) => n.name), ['cp-1'], 'the first read')
    await writer.createNode(nodeRecord('cp-2'))
    assert.deepEqual((await reader.listNodes()).map((n) => n.name).sort(), ['cp-1', 'cp-2'], "another connection's new node")
    await reader.createNode(nodeRecord('cp-3'))
    assert.deepEqual((await reader.listNodes()).map((n) => n.name).sort(), ['cp-1', 'cp-2', 'cp-3'], "this connection's new node")

    await writer.putObservation(nodeObservation('cp-1'))
    const first = (await reader.getObservationsIfChanged(['cp-1'], new Map())).get('cp-1')
    assert.ok(first?.version && first.observation, 'the first read returns the observation and its version')
    const unchanged = (await reader.getObservationsIfChanged(['cp-1'], new Map([['cp-1', first.version]]))).get('cp-1')
    assert.equal(unchanged?.observation, null, 'unchanged: the caller holds it already')
    await writer.putObservation(nodeObservation('cp-1', { observedAt: '2031-01-01T00:00:00.000Z' }))
    const changed = (await reader.getObservationsIfChanged(['cp-1'], new Map([['cp-1', first.version]]))).get('cp-1')
    assert.notEqual(changed?.version, first.version, "another connection's observation is a new version")
    assert.equal(changed?.observation?.observedAt, '2031-01-01T00:00:00.000Z', "and it is the other connection's")

    await writer.deleteNode('cp-2')
    assert.deepEqual((await reader.listNodes()).map((n) => n.name).sort(), ['cp-1', 'cp-3'], "another connection's removal")
  })
})
