// The real app in front of a fleet of test sshd nodes (test/support/sshd.ts),
// with no local node, for the SSH acceptance tests.

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import type { NodeRecord, SshNodeRecord, SshTarget } from '../../src/domain.ts'
import { makeTempDir, type GqlResponse } from '../helper.ts'
import type { SshdFleet, SshdNode } from './sshd.ts'
import { testResolver } from './resolver.ts'

export interface SshTestApp {
  app: FastifyInstance
  dir: string
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>>
  /** Puts the node in the store as an admin's registration would (pinned unless told otherwise). */
  addNode(node: SshdNode, overrides?: Partial<Omit<SshNodeRecord, 'ssh'>> & { ssh?: Partial<SshTarget> }): Promise<NodeRecord>
}

/** t: a test context, or anything with after() (a file-level app closes in the file's after hook). */
export async function sshFleetApp(t: { after(fn: () => Promise<void>): unknown }, fleet: SshdFleet, env: Record<string, string> = {}): Promise<SshTestApp> {
  const dir = await makeTempDir('staticpod-ssh-app-')
  const config = loadConfig({
    STORE_URL: `sqlite:${join(dir, 'staticpod-api.db')}`,
    LOCAL_NODE_PATH: 'off',
    ...fleet.env,
    SSH_STATE_DIR: join(dir, 'ssh-state'),
    // Nothing listens on the nodes' port 9: "no kubelet", quickly.
    SSH_KUBELET_HEALTHZ_PORT: '9',
    LOCK_WAIT_MS: '5000',
    // The crictl stand-in is a Node process per call; on a loaded 2-core CI
    // machine (a 50-node fleet starting in a parallel test file) it once took
    // over the 10 s default. These tests check answers, not speed.
    CRICTL_TIMEOUT_MS: '60000',
    KUBELET_HEALTHZ_TIMEOUT_MS: '10000',
    ...env,
  })
  const app = await buildApp(config, { logger: false, resolveHost: testResolver })
  t.after(async () => {
    await app.close()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    app,
    dir,
    async gql<T>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>> {
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
      return { status: res.statusCode, ...(res.json() as { data: T }) }
    },
    async addNode(node, overrides = {}) {
      const now = new Date().toISOString()
      const { ssh, ...rest } = overrides
      const record: NodeRecord = {
        name: node.name,
        kind: 'ssh',
        ssh: { host: '127.0.0.1', port: node.port, user: fleet.user, privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint: node.fingerprint, observedHostKeyFingerprint: null, ...ssh },
        staticPodPath: node.manifests,
        staticPodPathFrom: 'given',
        labels: [],
        createdAt: now,
        updatedAt: now,
        ...rest,
      }
      await app.services.store.createNode(record)
      return record
    },
  }
}
