// The app with an API server and kubelets beside it, for the mirror pod tests:
// the real app (real SQLite, real local filesystem agents, the real
// @kubernetes/client-node reading a real kubeconfig file) against the stand-in
// API server and the stand-in kubelet of test/support, which exist because no
// API server or kubelet can run here.
//
// The nodes: the first is the built-in local node; the others are nodes of the
// same kind with their own staticPodPath on this machine, read and written by
// the same local FileAgent. (They are put in the store and their agents handed
// out beside the registry's: the registry serves one local node only.) The
// tests address every node alike, so they run unchanged on SSH nodes.

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { NodeAgent } from '../../src/agents/agent.ts'
import { createLocalAgent } from '../../src/agents/local.ts'
import type { NodeRecord } from '../../src/domain.ts'
import { build, makeTempDir, type TestApp } from '../helper.ts'
import { LOCAL_AGENT_DEFAULTS } from './agent-defaults.ts'
import { FakeApiServer } from './fake-apiserver.ts'
import { FakeKubelet } from './fake-kubelet.ts'

export interface ClusterTestbed extends TestApp {
  api: FakeApiServer
  kubelet: FakeKubelet
  kubeconfig: string
  /** staticPodPath of each node, by name. */
  manifestsOf: Map<string, string>
}

export interface TestbedOptions {
  /** Node names; the first is the local node. Each also gets a Node object in the API server. */
  nodes: string[]
  env?: Record<string, string>
  clock?: () => Date
}

export async function clusterTestbed(t: TestContext, opts: TestbedOptions): Promise<ClusterTestbed> {
  const [localName, ...others] = opts.nodes
  if (!localName) throw new Error('a testbed needs at least one node')
  const dir = await makeTempDir('staticpod-api-cluster-')
  const api = new FakeApiServer()
  await api.start()
  const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'))
  const app = await build(t, { dir, nodeName: localName, clock: opts.clock, env: { KUBECONFIG: kubeconfig, ...opts.env } })
  // Registered after build's own: the app is closed first (hooks run in order).
  t.after(async () => {
    await api.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const manifestsOf = new Map([[localName, app.manifests]])
  const extraAgents = new Map<string, Promise<NodeAgent>>()
  const now = new Date().toISOString()
  for (const name of others) {
    const staticPodPath = join(dir, `manifests-${name}`)
    manifestsOf.set(name, staticPodPath)
    const record: NodeRecord = {
      name,
      kind: 'local',
      staticPodPath,
      staticPodPathFrom: 'given',
      labels: [],
      createdAt: now,
      updatedAt: now,
    }
    await app.app.services.store.createNode(record)
    extraAgents.set(
      name,
      createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: name, staticPodPath, stateDir: join(dir, `state-${name}`), kubeletHealthzUrl: 'http://127.0.0.1:9/healthz', lockWaitMs: 2000 }),
    )
  }
  await Promise.all(extraAgents.values())
  const registry = app.app.services.agents
  const registryAgentFor = registry.agentFor.bind(registry)
  registry.agentFor = (node: NodeRecord) => extraAgents.get(node.name) ?? registryAgentFor(node)
  t.after(async () => {
    for (const agent of extraAgents.values()) await (await agent).close()
  })

  opts.nodes.forEach((name, i) => api.addNode({ name, internalIP: `10.0.0.${11 + i}`, labels: { 'node-role.kubernetes.io/control-plane': '' } }))
  const kubelet = new FakeKubelet(
    api,
    opts.nodes.map((name) => ({ name, staticPodPath: manifestsOf.get(name) as string })),
  )
  t.after(() => kubelet.stop())
  return { ...app, api, kubelet, kubeconfig, manifestsOf }
}
