// A query over many nodes makes a constant number of store calls, and serves
// them from the store (within maxAgeSeconds) without contacting any node:
// the same count for 10 nodes as for 1,000 (× 8 static pods each). The fleet
// is the GraphQL benchmark's (bench/graphql/seed.ts): SSH nodes at addresses
// nothing answers on, so a node contacted would show as an SSH connection.
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { seed } from '../../bench/graphql/seed.ts'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { SqliteStore } from '../../src/store/sqlite.ts'
import type { Store } from '../../src/store/store.ts'
import { makeTempDir } from '../helper.ts'
import { testResolver } from '../support/resolver.ts'

const QUERIES = {
  staticPods: `{ staticPods { id nodeName name hash revision managed stale runtime { state } } }`,
  nodesWithPodsAndHistory: `{ nodes { name agent { reachable } findings { code } staticPods { name history(limit: 1) { revision action } } } }`,
}

/** Counts every call of every store method. */
function counting(store: Store): { store: Store; calls: Map<string, number> } {
  const calls = new Map<string, number>()
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver)
      if (typeof value !== 'function' || typeof property !== 'string') return value
      return (...args: unknown[]) => {
        calls.set(property, (calls.get(property) ?? 0) + 1)
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { store: proxy, calls }
}

async function storeCallsFor(t: TestContext, nodes: number, query: string): Promise<{ calls: Record<string, number>; pods: number }> {
  const dir = await makeTempDir('staticpod-store-calls-')
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'store.db')
  await seed(path, nodes, 8)
  const { store, calls } = counting(SqliteStore.open(path))
  const config = loadConfig({ STORE_URL: `sqlite:${path}`, LOCAL_NODE_PATH: 'off', STATIC_PODS_MAX_AGE_SECONDS: '600', SSH_CONNECT_TIMEOUT_MS: '200' })
  const app = await buildApp(config, { logger: false, store, resolveHost: testResolver })
  t.after(() => app.close())
  let agentsAsked = 0
  const agents = app.services.agents
  const agentFor = agents.agentFor.bind(agents)
  agents.agentFor = (node) => {
    agentsAsked++
    return agentFor(node)
  }

  calls.clear()
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query } })
  const body = res.json() as { data: Record<string, unknown[]>; errors?: unknown }
  assert.equal(body.errors, undefined, JSON.stringify(body.errors))
  assert.equal(agentsAsked, 0, 'no node agent was asked for')
  assert.equal(agents.sshPoolStats()?.connectionsOpened ?? 0, 0, 'no node was contacted')
  const listed = Object.values(body.data)[0] as Array<{ staticPods?: unknown[] }>
  const pods = listed.reduce((n, item) => n + (item.staticPods?.length ?? 1), 0)
  return { calls: Object.fromEntries([...calls].sort()), pods }
}

describe('store calls per query do not grow with the fleet', () => {
  for (const [name, query] of Object.entries(QUERIES)) {
    it(`${name}: the same store calls for 10 and 1,000 nodes, and no node contacted`, async (t) => {
      const small = await storeCallsFor(t, 10, query)
      const large = await storeCallsFor(t, 1000, query)
      assert.equal(small.pods, 80)
      assert.equal(large.pods, 8000)
      assert.deepEqual(large.calls, small.calls)
      const total = Object.values(large.calls).reduce((a, b) => a + b, 0)
      assert.ok(total <= 4, `${total} store calls: ${JSON.stringify(large.calls)}`)
      t.diagnostic(`store calls: ${JSON.stringify(large.calls)}`)
    })
  }
})
