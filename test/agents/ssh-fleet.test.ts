// A fleet of 50 real sshd nodes: pooled connections reused across requests
// (counted, not timed), and partial failure: black-holed and dead nodes give
// their last state, marked stale, one NODE_UNREACHABLE error each, and the
// query answers within the connect timeout plus a margin, not once per node.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { podYaml, type GqlResponse } from '../helper.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startBlackHole, startSshdFleet, type SshdFleet } from '../support/sshd.ts'

const FLEET_SIZE = 50
const BLACK_HOLES = 5
const CONNECT_TIMEOUT_MS = 3_000
/**
 * Over the connect timeout and the time the same warm nodes take without any
 * black hole (measured, as the machine may be busy): still far below the
 * 5 × 3 s of one timeout after another.
 */
const MARGIN_MS = 1_500

let fleet: SshdFleet
/** One service for the file: the second test starts from the first one's warm pool. */
let app: SshTestApp
const cleanups: Array<() => Promise<unknown>> = []

before(async () => {
  // No crictl stand-in: 100 node processes per listing would measure the stand-in, not the pool.
  fleet = await startSshdFleet(FLEET_SIZE, { prefix: 'fleet', node: () => ({ crictl: 'none' }) })
  await Promise.all(fleet.nodes.map((n) => writeFile(join(n.manifests, 'web.yaml'), podYaml('web'))))
  app = await sshFleetApp({ after: (fn) => cleanups.push(fn) }, fleet, { SSH_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) })
})
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  await fleet.stop()
})

/** Lists until no node fails: cold handshakes of 50 nodes on 2 busy cores can outlast the short connect timeout; the pool keeps the ones that worked. */
async function listUntilAllAnswer(): Promise<GqlResponse<Record<string, any>>> {
  let res = await app.gql(LIST)
  for (let attempt = 1; attempt < 5 && res.errors !== undefined; attempt++) res = await app.gql(LIST)
  return res
}

const LIST = `{ staticPods(maxAgeSeconds: 0) { nodeName name stale } }`

describe(`a fleet of ${FLEET_SIZE} SSH nodes`, () => {
  it('listing all static pods twice: the second call reuses every pooled connection', async () => {
    for (const n of fleet.nodes) await app.addNode(n)
    const stats = () => app.app.services.agents.sshPoolStats()

    const first = await listUntilAllAnswer()
    assert.equal(first.errors, undefined, JSON.stringify(first.errors?.slice(0, 3)))
    assert.equal(first.data.staticPods.length, FLEET_SIZE)
    assert.deepEqual([stats()?.connectionsOpened, stats()?.connectionsOpen], [FLEET_SIZE, FLEET_SIZE])

    const second = await app.gql(LIST)
    assert.equal(second.errors, undefined)
    assert.equal(second.data.staticPods.length, FLEET_SIZE)
    assert.ok(second.data.staticPods.every((p: { stale: boolean }) => !p.stale))
    assert.deepEqual([stats()?.connectionsOpened, stats()?.connectionsOpen], [FLEET_SIZE, FLEET_SIZE], 'no new connection')
  })

  it(`${BLACK_HOLES} black-holed nodes and a dead one among ${FLEET_SIZE}: the rest answer, stale data and one NODE_UNREACHABLE each, within the connect timeout`, async (t) => {
    const live = fleet.nodes.slice(0, FLEET_SIZE - BLACK_HOLES)
    for (const n of fleet.nodes.slice(live.length)) await app.app.services.store.deleteNode(n.name)
    // Every live node has been read (so it has a last state) and has its connection.
    assert.equal((await listUntilAllAnswer()).errors, undefined)
    const baselineStarted = performance.now()
    assert.equal((await app.gql(LIST)).errors, undefined)
    const baseline = performance.now() - baselineStarted
    const holes = await Promise.all(Array.from({ length: BLACK_HOLES }, () => startBlackHole()))
    t.after(() => Promise.all(holes.map((h) => h.close())))
    const donor = fleet.nodes[FLEET_SIZE - 1]!
    for (const [i, hole] of holes.entries()) {
      await app.addNode({ ...donor, name: `black-hole-${i + 1}`, port: hole.port })
    }
    // One node dies after it was read: its pods must still be served, stale.
    const dead = live[0]!
    await dead.kill()
    t.after(() => dead.start())

    const started = performance.now()
    const res = await app.gql(`{ staticPods(maxAgeSeconds: 0) { nodeName name stale } nodes { name agent { reachable lastError } } }`)
    const elapsed = performance.now() - started
    assert.ok(elapsed < CONNECT_TIMEOUT_MS + baseline + MARGIN_MS, `answered in ${Math.round(elapsed)} ms (without black holes: ${Math.round(baseline)} ms)`)

    const unreachable = [...holes.map((_, i) => `black-hole-${i + 1}`), dead.name].sort()
    assert.deepEqual(
      (res.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.node]).sort(),
      unreachable.map((n) => ['NODE_UNREACHABLE', n]),
    )
    const pods = res.data.staticPods as Array<{ nodeName: string; stale: boolean }>
    assert.equal(pods.length, live.length, 'every live node, the dead one included (from its last state)')
    assert.deepEqual(pods.filter((p) => p.stale).map((p) => p.nodeName), [dead.name])
    const nodes = new Map((res.data.nodes as Array<{ name: string; agent: { reachable: boolean; lastError: string | null } }>).map((n) => [n.name, n.agent]))
    for (const name of unreachable) {
      assert.equal(nodes.get(name)?.reachable, false, name)
      assert.match(nodes.get(name)?.lastError ?? '', /^NODE_UNREACHABLE: /, name)
    }
    assert.match(nodes.get('black-hole-1')?.lastError ?? '', /no SSH handshake within 3000 ms/)
    assert.equal(nodes.get(live[1]!.name)?.reachable, true)
  })
})
