// REST PUT with If-Match: * asks for a pod that exists; that is checked under
// the node lock, with the write, not by a read before it: a delete that holds
// the node when the PUT arrives decides the answer (412, nothing written).
import assert from 'node:assert/strict'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { it } from 'node:test'
import { ANONYMOUS_ADMIN } from '../../src/services/actor.ts'
import { build, podYaml } from '../helper.ts'

it('If-Match: * PUT arriving while a delete holds the node gets 412 and writes nothing', async (t) => {
  const app = await build(t, { env: { LOCK_WAIT_MS: '10000' } })
  await writeFile(join(app.manifests, 'web.yaml'), podYaml('web'))
  const services = app.app.services
  const agent = await services.agents.agentFor(await services.nodes.require(app.nodeName, ANONYMOUS_ADMIN))
  const remove = agent.deleteManifest.bind(agent)
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let deleting!: () => void
  const deleteStarted = new Promise<void>((resolve) => (deleting = resolve))
  agent.deleteManifest = async (fileName) => {
    deleting()
    await released
    return remove(fileName)
  }

  const deleted = app.gql(`mutation { deleteStaticPod(input: { node: "${app.nodeName}", name: "web" }) { deleted userErrors { code } } }`)
  await deleteStarted
  // The pod is still on the node now: a check made before taking the lock would let the PUT through.
  // (Dotfiles aside: the lock holder opens its temp file with the lock, and the kubelet ignores it.)
  assert.deepEqual((await readdir(app.manifests)).filter((name) => !name.startsWith('.')), ['web.yaml'])
  const put = app.app.inject({
    method: 'PUT',
    url: `/api/v1/nodes/${app.nodeName}/staticpods/default/web`,
    headers: { 'if-match': '*', 'content-type': 'application/yaml' },
    payload: podYaml('web', 'nginx:1.28'),
  })
  setTimeout(release, 300)
  const [d, p] = await Promise.all([deleted, put])
  assert.equal(d.data.deleteStaticPod.deleted, true)
  assert.equal(p.statusCode, 412, p.body)
  assert.deepEqual(await readdir(app.manifests), [], 'nothing was written')
})
