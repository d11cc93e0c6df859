// What the kubelet host expects of the files the write path leaves, on the
// local agent and on an SSH node logged in as root (privilege NONE; SUDO nodes:
// sudo-nodes.test.ts): a new manifest is 0600 and root's, as kubeadm writes
// them; a replaced one keeps its mode and owner; backups are 0600 and root's.
// The test runs as root (as the SSH tests do), so "root's" is the writer's.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { chmod, chown, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FileAgent } from '../../src/agents/file-agent.ts'
import { createLocalAgent } from '../../src/agents/local.ts'
import { createSshAgent } from '../../src/agents/ssh.ts'
import { SshPool } from '../../src/agents/ssh-pool.ts'
import { makeTempDir, podYaml } from '../helper.ts'
import { LOCAL_AGENT_DEFAULTS, SSH_AGENT_DEFAULTS, SSH_POOL_DEFAULTS } from '../support/agent-defaults.ts'
import { startSshdFleet, type SshdFleet } from '../support/sshd.ts'

/** Someone other than the writer, as an admin's chown would leave a file. */
const OTHER_UID = 4321
const OTHER_GID = 4322

let fleet: SshdFleet
let pool: SshPool
const tempDirs: string[] = []

before(async () => {
  assert.equal(process.getuid?.(), 0, 'these tests chown files to another user: run them as root, as CI does')
  fleet = await startSshdFleet(1, { prefix: 'modes', node: () => ({ crictl: 'none' }) })
  pool = new SshPool({ ...SSH_POOL_DEFAULTS, privateKey: readFileSync(fleet.clientKeyFile, 'utf8') })
})
after(async () => {
  await pool?.close()
  await fleet?.stop()
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

async function modeAndOwner(path: string): Promise<{ mode: string; uid: number; gid: number }> {
  const info = await stat(path)
  return { mode: (info.mode & 0o7777).toString(8), uid: info.uid, gid: info.gid }
}

const agents: Array<[string, () => Promise<FileAgent>]> = [
  [
    'the local agent',
    async () => {
      const dir = await makeTempDir('staticpod-modes-')
      tempDirs.push(dir)
      return createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'local', staticPodPath: join(dir, 'manifests'), stateDir: join(dir, 'state') })
    },
  ],
  [
    'an SSH node logged in as root',
    async () => {
      const node = fleet.nodes[0]!
      return createSshAgent({
        ...SSH_AGENT_DEFAULTS,
        endpoint: { nodeName: node.name, host: '127.0.0.1', port: node.port, username: fleet.user, hostKeyFingerprint: node.fingerprint },
        pool,
        staticPodPath: node.manifests,
        stateDir: join(fleet.root, 'state', node.name),
      })
    },
  ],
]

describe('modes and owners of what the write path leaves', () => {
  for (const [kind, make] of agents) {
    it(`${kind}: a new manifest is 0600 and root's, a replaced one keeps its mode and owner, backups are 0600 and root's`, async () => {
      const agent = await make()
      const manifests = agent.staticPodPath

      await agent.writeManifest('new.yaml', Buffer.from(podYaml('new')))
      assert.deepEqual(await modeAndOwner(join(manifests, 'new.yaml')), { mode: '600', uid: 0, gid: 0 })

      const path = join(manifests, 'existing.yaml')
      await writeFile(path, podYaml('existing'), { mode: 0o644 })
      await chown(path, OTHER_UID, OTHER_GID)
      await agent.writeManifest('existing.yaml', Buffer.from(podYaml('existing', 'nginx:1.28')))
      assert.equal(await readFile(path, 'utf8'), podYaml('existing', 'nginx:1.28'))
      assert.deepEqual(await modeAndOwner(path), { mode: '644', uid: OTHER_UID, gid: OTHER_GID })

      const { path: backup } = await agent.backup('existing.yaml', Buffer.from(podYaml('existing')))
      assert.equal(await readFile(backup, 'utf8'), podYaml('existing'))
      assert.deepEqual(await modeAndOwner(backup), { mode: '600', uid: 0, gid: 0 }, 'a backup is a new file: 0600, whatever the manifest was')
    })

    it(`${kind}: a replaced manifest with set-id bits keeps them and its owner (the owner is set first: a change of owner clears them)`, async () => {
      const agent = await make()
      const path = join(agent.staticPodPath, 'set-id.yaml')
      await agent.writeManifest('set-id.yaml', Buffer.from(podYaml('set-id')))
      await chown(path, OTHER_UID, OTHER_GID)
      await chmod(path, 0o6640)
      await agent.withLock({ actor: 'test', instance: 'test' }, async () => {
        await agent.listManifestDir()
        await agent.writeManifest('set-id.yaml', Buffer.from(podYaml('set-id', 'nginx:1.28')))
      })
      assert.equal(await readFile(path, 'utf8'), podYaml('set-id', 'nginx:1.28'))
      assert.deepEqual(await modeAndOwner(path), { mode: '6640', uid: OTHER_UID, gid: OTHER_GID })
    })
  }
})
