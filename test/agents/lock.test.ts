// The node lock inside one process: the in-process queue, LOCKED, stale locks
// taken over, release of our own lock only, renewal. Several FileAgent objects
// on one stateDir stand for several service instances: each has its own queue,
// so they meet only at the lock file.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readlink, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { FileAgent, type FileAgentOptions } from '../../src/agents/file-agent.ts'
import { LOCK_FILE_NAME, lockTarget, type LockRecord } from '../../src/agents/node-lock.ts'
import { LocalFileSystem } from '../../src/agents/local-fs.ts'
import { isServiceError } from '../../src/errors.ts'

async function tempNode(t: TestContext): Promise<{ manifests: string; state: string; lock: string }> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-lock-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  const manifests = join(root, 'manifests')
  const state = join(root, 'state')
  await mkdir(manifests)
  return { manifests, state, lock: join(state, LOCK_FILE_NAME) }
}

function agentOn(dirs: { manifests: string; state: string }, options: Partial<FileAgentOptions> = {}): FileAgent {
  return new FileAgent(new LocalFileSystem(), { nodeName: 'node-1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockTtlMs: 30_000, lockWaitMs: 10_000, ...options })
}

/** The lock is a symlink whose target is the holder record, as JSON. */
async function holderOf(lock: string): Promise<LockRecord> {
  return JSON.parse(await readlink(lock)) as LockRecord
}

function isLocked(pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isServiceError(err), `expected a ServiceError, got ${String(err)}`)
    assert.equal(err.code, 'LOCKED')
    if (pattern) assert.match(err.message, pattern)
    return true
  }
}

test('20 concurrent withLock calls in one process run one at a time, in arrival order', async (t) => {
  const dirs = await tempNode(t)
  // A short wait on purpose: each waiter waits for the queue to move, not for the whole queue.
  const agent = agentOn(dirs, { lockWaitMs: 500 })
  const events: string[] = []
  let inside = 0
  const calls = Array.from({ length: 20 }, (_, i) =>
    agent.withLock({ actor: `caller-${i}`, instance: 'test' }, async () => {
      inside++
      assert.equal(inside, 1, 'one holder at a time')
      const lockFile = await holderOf(dirs.lock)
      assert.equal(lockFile.actor, `caller-${i}`, 'the lock file names the current holder')
      events.push(`start ${i}`)
      await sleep(40)
      events.push(`end ${i}`)
      inside--
      return i
    }),
  )
  assert.deepEqual(await Promise.all(calls), Array.from({ length: 20 }, (_, i) => i))
  assert.deepEqual(events, Array.from({ length: 20 }, (_, i) => [`start ${i}`, `end ${i}`]).flat())
  assert.deepEqual(await readdir(dirs.state), [], 'released, nothing left behind')
})

test('a failing fn releases the lock and its error comes through', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  await assert.rejects(agent.withLock({ actor: 'a', instance: 'i' }, async () => Promise.reject(new Error('boom'))), /boom/)
  assert.deepEqual(await readdir(dirs.state), [])
  assert.equal(await agent.withLock({ actor: 'a', instance: 'i' }, async () => 'next'), 'next')
})

test('another instance holding the lock: LOCKED after lockWaitMs, naming the holder and since when', async (t) => {
  const dirs = await tempNode(t)
  const holder = agentOn(dirs)
  const other = agentOn(dirs, { lockWaitMs: 150 })
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let acquiredAt = ''
  const holding = holder.withLock({ actor: 'bob', instance: 'instance-a' }, async () => {
    acquiredAt = (await holderOf(dirs.lock)).acquiredAt
    await released
  })
  while (!acquiredAt) await sleep(5)

  const started = performance.now()
  await assert.rejects(
    other.withLock({ actor: 'carol', instance: 'instance-b' }, async () => assert.fail('must not run')),
    isLocked(new RegExp(`node-1 is locked by bob \\(instance instance-a, .+ pid ${process.pid}\\) since ${acquiredAt.replace(/\./g, '\\.')}`)),
  )
  const waited = performance.now() - started
  assert.ok(waited >= 140 && waited < 1_000, `waited ${waited} ms`)

  // In-process waiters behind a caller that waits for the file give up together, naming the same holder.
  const queued = [1, 2, 3].map((i) => other.withLock({ actor: `q${i}`, instance: 'instance-b' }, async () => assert.fail('must not run')))
  for (const outcome of await Promise.allSettled(queued)) {
    assert.equal(outcome.status, 'rejected')
    if (outcome.status === 'rejected') isLocked(/locked by bob/)(outcome.reason)
  }

  release()
  await holding
  assert.equal(await other.withLock({ actor: 'carol', instance: 'instance-b' }, async () => 'mine now'), 'mine now')
})

test('a waiter gets the lock as soon as the other instance releases it', async (t) => {
  const dirs = await tempNode(t)
  const first = agentOn(dirs)
  const second = agentOn(dirs, { lockWaitMs: 2_000 })
  const order: string[] = []
  const holding = first.withLock({ actor: 'a', instance: '1' }, async () => {
    order.push('first in')
    await sleep(200)
    order.push('first out')
  })
  await sleep(20)
  await second.withLock({ actor: 'b', instance: '2' }, async () => order.push('second in'))
  await holding
  assert.deepEqual(order, ['first in', 'first out', 'second in'])
})

function foreignLock(expiresAt: Date, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    actor: 'dave',
    instance: 'elsewhere',
    hostname: 'another-host.example',
    pid: 4242,
    pidNamespace: 'pid:[4026531836]',
    acquiredAt: new Date(expiresAt.getTime() - 30_000).toISOString(),
    expiresAt: expiresAt.toISOString(),
    token: 'ffffffffffff',
    ...extra,
  })
}

test('an expired lock from another host is taken over; an unexpired one is not', async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  const agent = agentOn(dirs, { lockWaitMs: 150 })

  await writeFile(dirs.lock, foreignLock(new Date(Date.now() + 60_000)))
  // Its holder may be alive (we cannot ask another host): only expiry frees it.
  await assert.rejects(agent.withLock({ actor: 'erin', instance: 'x' }, async () => undefined), isLocked(/locked by dave \(instance elsewhere, another-host\.example pid 4242\)/))

  await writeFile(dirs.lock, foreignLock(new Date(Date.now() - 1)))
  const started = performance.now()
  const holder = await agent.withLock({ actor: 'erin', instance: 'x' }, async () => (await holderOf(dirs.lock)).actor)
  assert.equal(holder, 'erin')
  assert.ok(performance.now() - started < 2_000, 'taken over at once, not polled for')
  assert.deepEqual(await readdir(dirs.state), [], 'the stale lock is gone, and so is ours')
})

test('a lock whose holder is known dead is taken over before it expires', async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  await writeFile(dirs.lock, foreignLock(new Date(Date.now() + 60_000)))
  const asked: string[] = []
  const agent = agentOn(dirs, {
    lockWaitMs: 150,
    isLockHolderAlive: (holder) => {
      asked.push(`${holder.hostname}/${holder.pid}`)
      return false
    },
  })
  assert.equal(await agent.withLock({ actor: 'frank', instance: 'x' }, async () => 'ran'), 'ran')
  assert.deepEqual(asked, ['another-host.example/4242'])
})

test('an unreadable lock file counts as held until it is older than the TTL', async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  // What a holder killed between create and write leaves (or one being written right now).
  await writeFile(dirs.lock, '{"actor": "ha')
  const agent = agentOn(dirs, { lockWaitMs: 100, lockTtlMs: 5_000 })
  await assert.rejects(agent.withLock({ actor: 'g', instance: 'x' }, async () => undefined), isLocked(/cannot be read/))

  const old = new Date(Date.now() - 10_000)
  await utimes(dirs.lock, old, old)
  assert.equal(await agent.withLock({ actor: 'g', instance: 'x' }, async () => 'ran'), 'ran')
})

test('release removes only our own lock: one taken over meanwhile stays', async (t) => {
  const dirs = await tempNode(t)
  const theirs = lockTarget(JSON.parse(foreignLock(new Date(Date.now() + 60_000))) as LockRecord)
  for (const expiry of ['far from expiry', 'about to expire'] as const) {
    // About to expire: release reads the lock before it moves it; far from it, it moves it aside at once and puts back what is not ours.
    let skew = 0
    const agent = agentOn(dirs, { clock: () => new Date(Date.now() + skew) })
    await agent.withLock({ actor: 'h', instance: 'x' }, async () => {
      if (expiry === 'about to expire') skew = 25_000 // of the 30 s TTL
      // As if ours had expired and another instance had taken it over.
      await symlink(theirs, `${dirs.lock}.new`)
      await rename(`${dirs.lock}.new`, dirs.lock)
    })
    assert.equal(await readlink(dirs.lock), theirs, expiry)
    assert.deepEqual(await readdir(dirs.state), [LOCK_FILE_NAME], `${expiry}: nothing else left behind`)
    await rm(dirs.lock)
  }
})

test('foreign locks as this version writes them (symlinks): an expired one, or one of a dead holder, is taken over; a live one is not', async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  const live = lockTarget(JSON.parse(foreignLock(new Date(Date.now() + 60_000))) as LockRecord)
  await symlink(live, dirs.lock)
  await assert.rejects(agentOn(dirs, { lockWaitMs: 100 }).withLock({ actor: 'i', instance: 'x' }, async () => undefined), isLocked(/locked by dave \(instance elsewhere, another-host\.example pid 4242\)/))
  const dead = agentOn(dirs, { lockWaitMs: 100, isLockHolderAlive: () => false })
  assert.equal(await dead.withLock({ actor: 'i', instance: 'x' }, async () => (await holderOf(dirs.lock)).actor), 'i')
  assert.deepEqual(await readdir(dirs.state), [])

  await symlink(lockTarget(JSON.parse(foreignLock(new Date(Date.now() - 1))) as LockRecord), dirs.lock)
  assert.equal(await agentOn(dirs, { lockWaitMs: 100 }).withLock({ actor: 'j', instance: 'x' }, async () => (await holderOf(dirs.lock)).actor), 'j')
  assert.deepEqual(await readdir(dirs.state), [])
})

test('the holder record survives names with slashes, and is one path component', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  await agent.withLock({ actor: 'team/alice', instance: 'pod/a/b' }, async () => {
    const target = await readlink(dirs.lock)
    assert.ok(!target.includes('/'), target)
    const holder = await holderOf(dirs.lock)
    assert.equal(holder.actor, 'team/alice')
    assert.equal(holder.instance, 'pod/a/b')
  })
})

test('a holder that runs longer than the TTL keeps its lock: it is renewed', async (t) => {
  const dirs = await tempNode(t)
  const holder = agentOn(dirs, { lockTtlMs: 300 })
  const other = agentOn(dirs, { lockTtlMs: 300, lockWaitMs: 100 })
  let firstExpiry = ''
  const holding = holder.withLock({ actor: 'slow', instance: 'a' }, async () => {
    firstExpiry = (await holderOf(dirs.lock)).expiresAt
    await sleep(900)
    return await holderOf(dirs.lock)
  })
  await sleep(600) // twice the TTL since it was taken
  await assert.rejects(other.withLock({ actor: 'impatient', instance: 'b' }, async () => undefined), isLocked(/locked by slow/))
  const last = await holding
  assert.equal(last.actor, 'slow')
  assert.ok(Date.parse(last.expiresAt) > Date.parse(firstExpiry), 'expiresAt moved forward')
  assert.deepEqual(await readdir(dirs.state), [])
})

for (const stale of ['a lock file of an earlier version', 'a symlink'] as const) {
test(`many instances racing for one stale lock (${stale}): never two holders at once`, async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  const record = foreignLock(new Date(Date.now() - 1))
  if (stale === 'a symlink') await symlink(lockTarget(JSON.parse(record) as LockRecord), dirs.lock)
  else await writeFile(dirs.lock, record)
  // Separate agents = separate queues, so every one of them goes to the lock file.
  const agents = Array.from({ length: 8 }, () => agentOn(dirs, { lockWaitMs: 10_000, lockTtlMs: 60_000 }))
  let inside = 0
  let maxInside = 0
  let runs = 0
  await Promise.all(
    agents.flatMap((agent, a) =>
      [0, 1, 2].map((i) =>
        agent.withLock({ actor: `agent-${a}-${i}`, instance: String(a) }, async () => {
          inside++
          maxInside = Math.max(maxInside, inside)
          await sleep(2)
          inside--
          runs++
        }),
      ),
    ),
  )
  assert.equal(maxInside, 1)
  assert.equal(runs, 24)
  assert.deepEqual(await readdir(dirs.state), [])
})
}

/**
 * A LocalFileSystem whose SYMLINK at the lock path is refused with `code`
 * and creates nothing: a full or read-only disk (code ENOSPC; over SFTP the
 * same FAILURE status as "exists"), or, with EEXIST, a lock that another
 * instance takes and releases between each refusal and the read behind it.
 */
function refusingLockCreates(lock: string, code: string): { fs: LocalFileSystem; refusals: () => number } {
  let refusals = 0
  const inner = new LocalFileSystem()
  const fs = Object.create(inner) as LocalFileSystem
  fs.pipeline = (what, fn) =>
    inner.pipeline(what, (p) =>
      fn(
        new Proxy(p, {
          get(target, property, receiver) {
            if (property !== 'symlink') {
              const value: unknown = Reflect.get(target, property, receiver)
              return typeof value === 'function' ? value.bind(target) : value
            }
            return (linkTarget: string, path: string) => {
              if (path !== lock) return target.symlink(linkTarget, path)
              refusals++
              return Promise.reject(Object.assign(new Error(`${code}: refused, symlink '${path}'`), { code }))
            }
          },
        }),
      ),
    )
  return { fs, refusals: () => refusals }
}

test('a lock create refused with nothing there: a failing disk fails the write after three tries; EEXIST is contention and waits', async (t) => {
  const dirs = await tempNode(t)
  await mkdir(dirs.state)
  const full = refusingLockCreates(dirs.lock, 'ENOSPC')
  const onFullDisk = new FileAgent(full.fs, { nodeName: 'node-1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockTtlMs: 30_000, lockWaitMs: 10_000 })
  const started = performance.now()
  await assert.rejects(
    onFullDisk.withLock({ actor: 'a', instance: 'i' }, async () => assert.fail('must not run')),
    (err: unknown) => {
      assert.ok(isServiceError(err), `expected a ServiceError, got ${String(err)}`)
      assert.equal(err.code, 'WRITE_FAILED')
      assert.match(err.message, /creating the lock on node node-1 failed: .*ENOSPC/)
      return true
    },
  )
  assert.equal(full.refusals(), 3, 'three creates, then the disk is taken at its word')
  assert.ok(performance.now() - started < 5_000, 'failed at once, not after the lock wait')

  const contended = refusingLockCreates(dirs.lock, 'EEXIST')
  const waiting = new FileAgent(contended.fs, { nodeName: 'node-1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockTtlMs: 30_000, lockWaitMs: 300 })
  await assert.rejects(
    waiting.withLock({ actor: 'b', instance: 'j' }, async () => assert.fail('must not run')),
    isLocked(),
  )
  assert.ok(contended.refusals() > 3, `kept trying while the node looked busy (${contended.refusals()} creates)`)
  assert.deepEqual(await readdir(dirs.state), [], 'nothing left behind')
})
