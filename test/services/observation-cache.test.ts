// Parsed observations are kept between reads (src/services/observation-cache.ts)
// but never served once the store holds another one: a second connection to the
// same SQLite file stands for another service instance sharing the store.
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import { seed } from '../../bench/graphql/seed.ts'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { ObservationCache } from '../../src/services/observation-cache.ts'
import { MIGRATIONS, migrate } from '../../src/store/sqlite-schema.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'
import type { NodeObservation } from '../../src/domain.ts'
import type { Store } from '../../src/store/store.ts'
import { makeTempDir } from '../helper.ts'
import { nodeObservation } from '../store/contract.ts'
import { testResolver } from '../support/resolver.ts'

/** Every connection's clock stands still: a version must not come from the time it was stored. */
const frozenClock = () => new Date('2024-05-01T12:00:00.000Z')

async function storeFile(t: TestContext): Promise<string> {
  const dir = await makeTempDir('staticpod-observation-cache-')
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, 'store.db')
}

function open(t: TestContext, path: string): SqliteStore {
  const store = SqliteStore.open(path, { clock: frozenClock })
  t.after(() => store.close())
  return store
}

const withHash = (node: string, hash: string): NodeObservation => {
  const obs = nodeObservation(node)
  return { ...obs, pods: obs.pods.map((p) => ({ ...p, hash })) }
}

/** Counts the observation texts the store sent back (each one parsed). */
function countingTexts(store: Store): { store: Store; texts: () => number } {
  let texts = 0
  const counted: Store = Object.create(store) as Store
  counted.getObservationsIfChanged = async (nodes, known) => {
    const got = await store.getObservationsIfChanged(nodes, known)
    for (const s of got.values()) if (s.observation) texts++
    return got
  }
  return { store: counted, texts: () => texts }
}

describe('observation cache', () => {
  it('serves an unchanged observation without reading its text again, and another instance’s newer one at the next read', async (t) => {
    const path = await storeFile(t)
    const mine = open(t, path)
    const theirs = open(t, path)
    await mine.putObservation(withHash('cp-1', 'sha256:one'))
    const { store, texts } = countingTexts(mine)
    const cache = new ObservationCache(store)

    const first = await cache.read(['cp-1', 'cp-2'])
    assert.deepEqual([...first.keys()], ['cp-1'])
    assert.equal(first.get('cp-1')?.pods[0]?.hash, 'sha256:one')
    const second = await cache.read(['cp-1'])
    assert.equal(second.get('cp-1'), first.get('cp-1'), 'the same parsed object')
    assert.equal(texts(), 1)

    // Same node, same clock, other connection: the next read has it.
    await theirs.putObservation(withHash('cp-1', 'sha256:two'))
    assert.equal((await cache.read(['cp-1'])).get('cp-1')?.pods[0]?.hash, 'sha256:two')
    // And so does the store's own writer, even with identical content.
    await mine.putObservation(withHash('cp-1', 'sha256:two'))
    const third = await cache.read(['cp-1'])
    assert.notEqual(third.get('cp-1'), second.get('cp-1'))
    assert.equal(texts(), 3)
  })

  it('forgets a node whose observation another instance removed', async (t) => {
    const path = await storeFile(t)
    const mine = open(t, path)
    const theirs = open(t, path)
    await mine.putObservation(nodeObservation('cp-1'))
    const cache = new ObservationCache(mine)
    assert.equal((await cache.read(['cp-1'])).size, 1)
    await theirs.deleteNode('cp-1')
    assert.equal((await cache.read(['cp-1'])).size, 0)
    assert.equal(cache.size, 0)
  })

  it('hands out frozen observations: every request shares them', async (t) => {
    const store = open(t, await storeFile(t))
    await store.putObservation(nodeObservation('cp-1'))
    const obs = (await new ObservationCache(store).read(['cp-1'])).get('cp-1')
    assert.ok(obs)
    assert.throws(() => obs.pods.push(obs.pods[0] as never), TypeError)
    assert.throws(() => {
      ;(obs.agent as { reachable: boolean }).reachable = false
    }, TypeError)
  })

  it('holds at most maxNodes, dropping the least recently read', async (t) => {
    const store = open(t, await storeFile(t))
    for (const node of ['a', 'b', 'c']) await store.putObservation(nodeObservation(node))
    const { store: counted, texts } = countingTexts(store)
    const cache = new ObservationCache(counted, 2)
    await cache.read(['a', 'b'])
    await cache.read(['a'])
    await cache.read(['c'])
    assert.equal(cache.size, 2)
    assert.equal(texts(), 3)
    await cache.read(['a', 'c'])
    assert.equal(texts(), 3, 'a and c were held')
    await cache.read(['b'])
    assert.equal(texts(), 4, 'b was dropped')
  })

  it('reads an observation stored before versions existed in full every time, until it is stored again', async (t) => {
    const path = await storeFile(t)
    const old = new Database(path)
    migrate(old, path, MIGRATIONS.slice(0, 1))
    old
      .prepare('INSERT INTO observations (node, observed_at, stored_at, observation) VALUES (?, ?, ?, ?)')
      .run('cp-1', null, frozenClock().toISOString(), JSON.stringify(nodeObservation('cp-1')))
    old.close()

    const { store, texts } = countingTexts(open(t, path))
    const cache = new ObservationCache(store)
    assert.deepEqual((await cache.read(['cp-1'])).get('cp-1'), nodeObservation('cp-1'))
    await cache.read(['cp-1'])
    assert.equal(texts(), 2)
    await store.putObservation(nodeObservation('cp-1'))
    await cache.read(['cp-1'])
    await cache.read(['cp-1'])
    assert.equal(texts(), 3)
  })

  it('staticPods through GraphQL shows what another instance stored, on the next query', async (t) => {
    const path = await storeFile(t)
    await seed(path, 3, 2)
    const config = loadConfig({ STORE_URL: `sqlite:${path}`, LOCAL_NODE_PATH: 'off', STATIC_PODS_MAX_AGE_SECONDS: '3600' })
    const app = await buildApp(config, { logger: false, resolveHost: testResolver })
    t.after(() => app.close())
    const hashes = async (): Promise<string[]> => {
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ staticPods(node: "cp-0001") { hash } }' } })
      return (res.json() as { data: { staticPods: Array<{ hash: string }> } }).data.staticPods.map((p) => p.hash)
    }
    const before = await hashes()
    assert.equal(before.length, 2)
    assert.deepEqual(await hashes(), before)

    const theirs = open(t, path)
    const stored = (await theirs.getObservations(['cp-0001'])).get('cp-0001')
    assert.ok(stored)
    await theirs.putObservation({ ...stored, observedAt: new Date().toISOString(), pods: stored.pods.map((p) => ({ ...p, hash: `${p.hash}-changed` })) })
    assert.deepEqual(await hashes(), before.map((h) => `${h}-changed`))
  })
})
