// The observer's schedule and bounds (src/services/observer.ts), on the real
// app (SQLite file, the local node or SSH node records in the store):
// OBSERVE_INTERVAL_SECONDS=0 turns it off, no timer of it keeps the process
// alive, at most OBSERVE_CONCURRENCY nodes are read at once, and rounds are
// jittered around the interval. The schedule is checked on node's mocked
// setTimeout (Date stays real), so it is exact and does not depend on how
// loaded the machine is.

import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { pino } from 'pino'
import { Observer } from '../../src/services/observer.ts'
import { build, podYaml, type TestApp } from '../helper.ts'
import { sshNodeRecord } from '../support/node-record.ts'

/** Timers this process holds that keep it alive (unref'd ones are not listed). */
const refTimers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

describe('OBSERVE_INTERVAL_SECONDS', () => {
  it('0 turns the observer off: start() observes nothing and leaves no timer; a round can still be run by hand', async (t) => {
    const ta = await build(t, { env: { OBSERVE_INTERVAL_SECONDS: '0' } })
    await writeFile(join(ta.manifests, 'web.yaml'), podYaml('web'))
    const { observer, store } = ta.app.services
    const before = refTimers()
    observer.start()
    assert.equal(refTimers(), before, 'start() added no timer that keeps the process alive')
    // Were it on, the first round would come at once (its delay is min(5 s, the interval) × jitter = 0).
    await new Promise((r) => setTimeout(r, 700))
    assert.equal((await store.getObservations([ta.nodeName])).size, 0, 'no observation was stored')
    assert.deepEqual(await store.listEvents({ limit: 10, order: 'newest' }), [], 'no event was recorded')
    // What the check above looks at is what a round writes (Lambda's schedule runs rounds so).
    const round = await observer.round()
    assert.equal(round.observed, 1)
    assert.equal((await store.getObservations([ta.nodeName])).size, 1, 'a round by hand stores the observation')
  })

  it('an observer that is on keeps no timer that holds the process alive either', async (t) => {
    const ta = await build(t, { env: { OBSERVE_INTERVAL_SECONDS: '30', LOCAL_NODE_PATH: 'off' } })
    const before = refTimers()
    ta.app.services.observer.start()
    assert.equal(refTimers(), before, 'the first round is waited for on an unref()ed timer')
    await ta.app.services.observer.stop()
  })
})

/**
 * SSH "nodes" that accept a connection, say nothing for holdMs, then hang up:
 * each node read is one connection held open while it runs. Counts how many
 * are open at once.
 */
async function holdingNodes(t: TestContext, count: number, holdMs: number): Promise<{ ports: number[]; maxOpen: () => number; accepted: () => number }> {
  let open = 0
  let maxOpen = 0
  let accepted = 0
  const servers: Server[] = []
  const sockets = new Set<Socket>()
  for (let i = 0; i < count; i++) {
    const server = createServer((socket) => {
      accepted++
      open++
      maxOpen = Math.max(maxOpen, open)
      sockets.add(socket)
      socket.on('error', () => undefined)
      socket.on('close', () => {
        open--
        sockets.delete(socket)
      })
      setTimeout(() => socket.destroy(), holdMs)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
  }
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  })
  return { ports: servers.map((s) => (s.address() as AddressInfo).port), maxOpen: () => maxOpen, accepted: () => accepted }
}

/** A client key, so that the SSH agent goes as far as connecting (the nodes never get to ask for it). */
const clientKey = (): string => generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'sec1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey

describe('OBSERVE_CONCURRENCY', () => {
  it('a round reads at most OBSERVE_CONCURRENCY nodes at once, and every node', async (t) => {
    const nodes = 8
    const concurrency = 3
    const held = await holdingNodes(t, nodes, 300)
    const ta = await build(t, {
      env: { LOCAL_NODE_PATH: 'off', OBSERVE_INTERVAL_SECONDS: '0', OBSERVE_CONCURRENCY: String(concurrency), SSH_CONNECT_TIMEOUT_MS: '5000', SSH_PRIVATE_KEY: clientKey() },
    })
    for (const [i, port] of held.ports.entries()) {
      await ta.app.services.store.createNode(
        sshNodeRecord({ name: `slow-${i}`, host: '127.0.0.1', port, user: 'root', staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }),
      )
    }
    const round = await ta.app.services.observer.round()
    assert.equal(round.nodes, nodes)
    assert.equal(round.failed.length, nodes, JSON.stringify(round.failed))
    assert.ok(held.accepted() >= nodes, `every node was read (${held.accepted()} connections): ${JSON.stringify(round.failed)}`)
    assert.equal(held.maxOpen(), concurrency, `at most ${concurrency} nodes at once, and that many (saw ${held.maxOpen()})`)
  })
})

/** An observer over the app's own services, with its random source and a log the test reads. */
function observerOf(ta: TestApp, intervalSeconds: number, random?: () => number): { observer: Observer; rounds: () => number } {
  let rounds = 0
  const log = pino({ level: 'debug' }, {
    write(line: string) {
      if (line.includes('observer: round done')) rounds++
    },
  })
  const s = ta.app.services
  const observer = new Observer({
    nodes: s.nodes,
    nodeState: s.nodeState,
    staticPods: s.staticPods,
    diagnosis: s.diagnosis,
    events: s.events,
    clock: () => new Date(),
    log,
    intervalSeconds,
    concurrency: 4,
    certWarnDays: 30,
    ...(random ? { random } : {}),
  })
  return { observer, rounds: () => rounds }
}

/**
 * Lets a round that a fired timer started run to its end, or 250 ms pass: a
 * round over no nodes is a listing and a prune, whose commit is flushed in
 * the thread pool (real I/O, not a mocked timer), in far less.
 */
async function settle(until: () => boolean = () => false): Promise<void> {
  const deadline = performance.now() + 250
  while (!until() && performance.now() < deadline) await new Promise((r) => setImmediate(r))
}

describe('jitter', () => {
  it('the first round comes after min(5 s, interval) × random, each next one interval × (1 ± 10 %) after the last one started', async (t) => {
    // No nodes: a round is a listing and a prune, so it finishes in a few event loop turns while timers are mocked.
    const ta = await build(t, { env: { LOCAL_NODE_PATH: 'off', OBSERVE_INTERVAL_SECONDS: '0' } })
    const draws = [0.5, 0, 0.75, 0.5]
    const { observer, rounds } = observerOf(ta, 1000, () => draws.shift() ?? 0.5)
    t.mock.timers.enable({ apis: ['setTimeout'] })
    try {
      observer.start()
      const expectRoundsAfter = async (ms: number, n: number, why: string) => {
        t.mock.timers.tick(ms)
        await settle(() => rounds() > n)
        assert.equal(rounds(), n, why)
      }
      // First: min(5000, 1_000_000) × 0.5 = 2.5 s.
      await expectRoundsAfter(2_499, 0, 'not before 2.5 s')
      await expectRoundsAfter(1, 1, 'the first round at 2.5 s')
      // Then 1000 s × (1 + 0.1 × (2 × 0 − 1)) = 900 s after it started (less the few real ms the round took).
      await expectRoundsAfter(895_000, 1, 'not 5 s before 900 s')
      await expectRoundsAfter(5_000, 2, 'the second round 900 s after the first, not 1000 s')
      // Then 1000 s × (1 + 0.1 × (2 × 0.75 − 1)) = 1050 s.
      await expectRoundsAfter(1_000_000, 2, 'not at 1000 s')
      await expectRoundsAfter(45_000, 2, 'not 5 s before 1050 s')
      await expectRoundsAfter(5_000, 3, 'the third round 1050 s after the second')
    } finally {
      await observer.stop()
      t.mock.timers.reset()
    }
  })

  it('with Math.random, the gaps between rounds stay within the interval ± 10 % and are not all the interval', async (t) => {
    const ta = await build(t, { env: { LOCAL_NODE_PATH: 'off', OBSERVE_INTERVAL_SECONDS: '0' } })
    const intervalMs = 100_000
    const { observer, rounds } = observerOf(ta, intervalMs / 1000)
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const startedAt: number[] = []
    let now = 0
    const step = async (ms: number): Promise<void> => {
      const before = rounds()
      t.mock.timers.tick(ms)
      now += ms
      await settle(() => rounds() > before)
      if (rounds() > before) startedAt.push(now)
    }
    try {
      observer.start()
      // The first round: within 5 s (100 ms steps).
      for (let i = 0; i < 60 && startedAt.length === 0; i++) await step(100)
      assert.equal(startedAt.length, 1, 'a first round within 5 s')
      // Ten more, found at 1 s resolution: nothing before 0.9 × interval − 2 s (a round may take up to 2 real seconds), each by 1.1 × interval.
      for (let n = 1; n <= 10; n++) {
        const last = startedAt[startedAt.length - 1] as number
        await step(0.9 * intervalMs - 2_000)
        assert.equal(startedAt.length, n, `round ${n + 1} not before 0.9 × the interval`)
        while (startedAt.length === n && now - last <= 1.1 * intervalMs + 1_000) await step(1_000)
        assert.equal(startedAt.length, n + 1, `round ${n + 1} by 1.1 × the interval`)
      }
    } finally {
      await observer.stop()
      t.mock.timers.reset()
    }
    const gaps = startedAt.slice(1).map((at, i) => at - (startedAt[i] as number))
    for (const gap of gaps) assert.ok(gap >= 0.9 * intervalMs - 2_000 && gap <= 1.1 * intervalMs + 1_000, `gap ${gap} ms within the interval ± 10 %`)
    // Ten gaps drawn uniformly over 20 s, seen at 1 s resolution, are all alike with a probability of about 20^-9.
    assert.ok(new Set(gaps).size > 1, `the gaps vary: ${gaps.join(', ')}`)
    assert.ok(gaps.some((g) => Math.abs(g - intervalMs) > 1_000), `not every round a whole interval after the last: ${gaps.join(', ')}`)
  })
})
