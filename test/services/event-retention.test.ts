// EVENT_RETENTION_DAYS at the service level: EventService.prune forgets the
// events older than the retention and keeps the newer ones, and the observer
// prunes so on its own, at most hourly, on the real app and its SQLite file
// (read back through a second connection, as another instance would).

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { EventRecord, NewEvent } from '../../src/domain.ts'
import type { Actor } from '../../src/services/actor.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'
import { build, type TestApp } from '../helper.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const ADMIN: Actor = { name: 'test-admin', role: 'admin', nodes: null }

/** An event `ageMs` before `now`, named by its age so the test can say which are left. */
function eventAged(now: number, ageMs: number, name: string): NewEvent {
  return {
    at: new Date(now - ageMs).toISOString(),
    type: 'STATIC_POD_CHANGED',
    node: 'cp-1',
    namespace: 'kube-system',
    name,
    message: `kube-system/${name} changed`,
    fromHash: 'a'.repeat(64),
    toHash: 'b'.repeat(64),
    actor: null,
  }
}

/** The app with EVENT_RETENTION_DAYS=3 and a clock the test sets; no nodes, so a round is only its prune. */
async function appAt(t: TestContext, now: { ms: number }): Promise<TestApp> {
  return build(t, { clock: () => new Date(now.ms), env: { EVENT_RETENTION_DAYS: '3', OBSERVE_INTERVAL_SECONDS: '0', LOCAL_NODE_PATH: 'off' } })
}

/** What the SQLite file holds, through a connection of its own. */
async function namesInFile(t: TestContext, ta: TestApp): Promise<string[]> {
  const other = SqliteStore.open(join(ta.dir, 'staticpod-api.db'))
  t.after(() => other.close())
  const events: EventRecord[] = await other.listEvents({ limit: 100, order: 'oldest' })
  return events.map((e) => e.name ?? '')
}

describe('EVENT_RETENTION_DAYS', () => {
  it('EventService.prune forgets events older than the retention and keeps the newer ones', async (t) => {
    const now = { ms: Date.parse('2026-03-10T12:00:00.000Z') }
    const ta = await appAt(t, now)
    const { events } = ta.app.services
    await events.append([
      eventAged(now.ms, 10 * DAY, 'ten-days'),
      eventAged(now.ms, 3 * DAY + HOUR, 'three-days-and-an-hour'),
      eventAged(now.ms, 3 * DAY - HOUR, 'three-days-less-an-hour'),
      eventAged(now.ms, HOUR, 'an-hour'),
      eventAged(now.ms, 0, 'now'),
    ])
    assert.equal(await events.prune(), 2)
    const left = await events.list({ limit: 100 }, ADMIN)
    assert.deepEqual(left.map((e) => e.name), ['now', 'an-hour', 'three-days-less-an-hour'])
    assert.deepEqual(await namesInFile(t, ta), ['three-days-less-an-hour', 'an-hour', 'now'], 'gone from the file too')
    // The cutoff follows the clock: two days on, the one left from before the retention goes too.
    now.ms += 2 * DAY
    assert.equal(await events.prune(), 1)
    assert.deepEqual((await events.list({ limit: 100 }, ADMIN)).map((e) => e.name), ['now', 'an-hour'])
    assert.equal(await events.prune(), 0, 'nothing more to prune')
  })

  it('the observer prunes on its own: in its first round, then not again before an hour has passed', async (t) => {
    const now = { ms: Date.parse('2026-03-10T12:00:00.000Z') }
    const ta = await appAt(t, now)
    const { events, observer } = ta.app.services
    await events.append([eventAged(now.ms, 4 * DAY, 'old'), eventAged(now.ms, DAY, 'recent')])
    // The observer's "hourly" is this process's time (Date), not the clock events are dated by.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    try {
      await observer.round()
      assert.deepEqual(await namesInFile(t, ta), ['recent'], 'the first round pruned')
      await events.append([eventAged(now.ms, 4 * DAY, 'old-too')])
      t.mock.timers.tick(HOUR - 60_000)
      await observer.round()
      assert.deepEqual(await namesInFile(t, ta), ['recent', 'old-too'], 'a round within the hour does not prune again')
      t.mock.timers.tick(60_000)
      await observer.round()
      assert.deepEqual(await namesInFile(t, ta), ['recent'], 'a round an hour after the last prune prunes')
    } finally {
      t.mock.timers.reset()
    }
  })
})
