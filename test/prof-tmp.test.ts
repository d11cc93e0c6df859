import { test, after, before } from 'node:test'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { podYaml } from './helper.ts'
import { sshFleetApp } from './support/ssh-app.ts'
import { startSshdFleet, type SshdFleet } from './support/sshd.ts'
let fleet: SshdFleet
before(async () => { const s = performance.now(); fleet = await startSshdFleet(50, { prefix: 'f', node: () => ({ crictl: 'none' }) }); console.log('fleet up', Math.round(performance.now() - s)); await Promise.all(fleet.nodes.map((n) => writeFile(join(n.manifests, 'web.yaml'), podYaml('web')))) })
after(() => fleet.stop())
test('prof', async (t) => {
  const app = await sshFleetApp(t, fleet, { SSH_CONNECT_TIMEOUT_MS: '20000' })
  for (const n of fleet.nodes) await app.addNode(n)
  for (let i = 0; i < 3; i++) {
    const s = performance.now(); const r = await app.gql(`{ staticPods(maxAgeSeconds: 0) { name } }`); console.log('list', Math.round(performance.now() - s), r.data.staticPods.length, JSON.stringify(r.errors ?? []).slice(0, 200))
  }
  const pool = app.app.services.agents
  const nodes = await app.app.services.store.listNodes()
  const agents = await Promise.all(nodes.map((n) => pool.agentFor(n)))
  for (const [name, fn] of [['list', (a: any) => a.listManifestDir()], ['runtime', (a: any) => a.runtimeStatus()], ['kubelet', (a: any) => a.kubeletHealth()]] as const) {
    const s = performance.now(); await Promise.all(agents.map(fn)); console.log(name, Math.round(performance.now() - s))
  }
})
