// Who waits for a node, and for how long, decided in one place (the agents'
// node lock): a second writer in this same process gets LOCKED once the
// writer ahead of it has held the node for LOCK_WAIT_MS, as a writer of
// another process does; LOCK_WAIT_MS=0 means do not wait at all. Both kinds
// of node, through GraphQL, with the holder made slow at its write.
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { after, describe, it } from 'node:test'
import type { NodeAgent } from '../../src/agents/agent.ts'
import { ANONYMOUS_ADMIN } from '../../src/services/actor.ts'
import { build, NODE_KINDS, podYaml, stopSharedSshd, type TestApp } from '../helper.ts'

after(stopSharedSshd)

const CREATE = `mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { name } userErrors { code message } } }`

/** The node's agent (the one the service uses), its writes held back until release() is called. */
async function slowWrites(app: TestApp): Promise<{ writing: Promise<void>; release: () => void }> {
  const services = app.app.services
  const agent: NodeAgent = await services.agents.agentFor(await services.nodes.require(app.nodeName, ANONYMOUS_ADMIN))
  const write = agent.writeManifest.bind(agent)
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let started!: () => void
  const writing = new Promise<void>((resolve) => (started = resolve))
  agent.writeManifest = async (fileName, bytes) => {
    started()
    await released
    return write(fileName, bytes)
  }
  return { writing, release }
}

for (const kind of NODE_KINDS) {
  describe(`a second writer in this process (${kind} node)`, () => {
    it('gets LOCKED after LOCK_WAIT_MS while the first holds the node, and nothing of it is written', async (t) => {
      const app = await build(t, { node: kind, env: { LOCK_WAIT_MS: '400' } })
      const slow = await slowWrites(app)
      const first = app.gql(CREATE, { input: { node: app.nodeName, manifest: podYaml('first') } })
      await slow.writing
      const started = performance.now()
      const second = await app.gql(CREATE, { input: { node: app.nodeName, manifest: podYaml('second') } })
      const waited = performance.now() - started
      slow.release()

      const error = second.data.createStaticPod.userErrors[0]
      assert.equal(error?.code, 'LOCKED', JSON.stringify(second.data))
      assert.match(error.message, /is locked by anonymous .*gave up after waiting 400 ms/)
      assert.ok(waited >= 400, `gave up after ${waited.toFixed(0)} ms, before LOCK_WAIT_MS`)
      assert.deepEqual((await first).data.createStaticPod.userErrors, [])
      assert.deepEqual((await readdir(app.manifests)).filter((f) => !f.startsWith('.')), ['first.yaml'])
    })

    it('with LOCK_WAIT_MS=0 gets LOCKED at once; a writer after the first is done goes through', async (t) => {
      const app = await build(t, { node: kind, env: { LOCK_WAIT_MS: '0' } })
      const slow = await slowWrites(app)
      const first = app.gql(CREATE, { input: { node: app.nodeName, manifest: podYaml('first') } })
      await slow.writing
      const second = await app.gql(CREATE, { input: { node: app.nodeName, manifest: podYaml('second') } })
      assert.equal(second.data.createStaticPod.userErrors[0]?.code, 'LOCKED')
      slow.release()
      assert.deepEqual((await first).data.createStaticPod.userErrors, [])
      const third = await app.gql(CREATE, { input: { node: app.nodeName, manifest: podYaml('third') } })
      assert.deepEqual(third.data.createStaticPod.userErrors, [])
    })
  })
}
