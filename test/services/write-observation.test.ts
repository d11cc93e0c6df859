// What a write stores as the node's state after it: made from the listing
// read under the node lock and stored conditionally on the version read then.
// Another instance's reader does not take the node lock, so it may store an
// observation in between; the write's store then fails once, reads what won,
// and stores the write's state over it, with the events between the two.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { it } from 'node:test'
import { sha256Hex } from '../../src/manifest/hash.ts'
import { ANONYMOUS_ADMIN } from '../../src/services/actor.ts'
import { build, podYaml } from '../helper.ts'

const UPDATE = `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { hash revision } userErrors { code message } } }`

it("a write's state wins over an observation another instance stored while the write held the node", async (t) => {
  const app = await build(t)
  await writeFile(join(app.manifests, 'web.yaml'), podYaml('web', 'nginx:1'))
  await app.gql('{ staticPods(maxAgeSeconds: 0) { name } }')
  const services = app.app.services
  const store = services.store
  const agent = await services.agents.agentFor(await services.nodes.require(app.nodeName, ANONYMOUS_ADMIN))
  const before = (await store.getObservations([app.nodeName])).get(app.nodeName)
  assert.ok(before, 'the read stored an observation')

  const write = agent.writeManifest.bind(agent)
  agent.writeManifest = async (fileName, bytes) => {
    // Stored under a new version while the write holds the lock, as another instance's reader would.
    await store.putObservation({ ...before, observedAt: new Date().toISOString() })
    return write(fileName, bytes)
  }
  const outcomes: boolean[] = []
  const putObservationIf = store.putObservationIf.bind(store)
  store.putObservationIf = async (observation, expectedVersion, events) => {
    const result = await putObservationIf(observation, expectedVersion, events)
    outcomes.push(result.stored)
    return result
  }

  const manifest = podYaml('web', 'nginx:2')
  const res = await app.gql(UPDATE, { input: { node: app.nodeName, name: 'web', manifest } })
  assert.deepEqual(res.data.updateStaticPod.userErrors, [])
  const hash = sha256Hex(Buffer.from(manifest, 'utf8'))
  assert.equal(res.data.updateStaticPod.staticPod.hash, hash)
  assert.deepEqual(outcomes, [false, true], 'the first store lost to the one made meanwhile; the second, after reading it, stored the write')

  const after = (await store.getObservations([app.nodeName])).get(app.nodeName)
  assert.equal(after?.pods.find((p) => p.name === 'web')?.hash, hash, "the store holds the write's state")
  const events = await app.gql(`{ events(node: "${app.nodeName}", types: [STATIC_POD_CHANGED]) { toHash actor } }`)
  assert.deepEqual(
    events.data.events.filter((e: { toHash: string }) => e.toHash === hash),
    [{ toHash: hash, actor: ANONYMOUS_ADMIN.name }],
    'the change is recorded once, as the write',
  )
})
