// SUDO nodes through the whole service, against real OpenSSH sshd daemons
// that refuse root logins (PermitRootLogin no), a real unprivileged user made
// by the test (test/support/sudo-user.ts) and real sudo: with the README's
// sudoers rule, every static pod operation works with the manifests
// directory writable by root alone (so every byte went through the SFTP
// server started with sudo -n); without it, PRIVILEGE_DENIED with sudo's own
// words and the directory untouched. A node whose staticPodPath the login
// may not read is PRIVILEGE_DENIED too, not a node without static pods.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { SFTP_SERVER_PATHS, sudoersRule } from '../../src/agents/sudo.ts'
import { podYaml } from '../helper.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'
import { createSudoUser, type SudoUser } from '../support/sudo-user.ts'

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex')
/** The SFTP server this machine has: what the service finds, and what the sudoers rule names. */
const sftpServer = SFTP_SERVER_PATHS.find((p) => existsSync(p)) as string

let fleet: SshdFleet
let user: SudoUser

before(async () => {
  assert.ok(sftpServer, `none of ${SFTP_SERVER_PATHS.join(', ')} exists: install openssh-server`)
  fleet = await startSshdFleet(3, { prefix: 'sudo', node: () => ({ permitRootLogin: 'no', crictl: 'from-manifests' }) })
  user = await createSudoUser()
  for (const node of fleet.nodes) {
    // Only root may list or write it: whatever reaches it went through sudo.
    await chmod(node.manifests, 0o700)
  }
})
after(async () => {
  // The daemons first: their sessions are the user's processes, which userdel waits for.
  await fleet?.stop()
  await user?.remove()
})

const node = (i: number): SshdNode => fleet.nodes[i] as SshdNode

/**
 * The README's rule for this user and node, plus where sudo finds the
 * node's crictl stand-in (its secure_path): a Defaults line, no command.
 */
function dropInFor(target: SshdNode, paths: { sftpServer?: string; crictl?: string } = {}): string {
  const bin = join(target.dir, 'bin')
  return [
    `Defaults:${user.name} secure_path="${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"`,
    sudoersRule(user.name, { sftpServer: paths.sftpServer ?? sftpServer, crictl: paths.crictl ?? join(bin, 'crictl') }, 'STATICPOD_API_TEST'),
  ].join('\n')
}

async function register(app: SshTestApp, target: SshdNode, fields: Record<string, unknown> = {}) {
  const registered = await app.gql(
    `mutation($input: RegisterNodeInput!) { registerNode(input: $input) { node { name user privilege sftpServer } userErrors { code message } } }`,
    {
      input: {
        name: target.name,
        host: '127.0.0.1',
        port: target.port,
        user: user.name,
        privilege: 'SUDO',
        staticPodPath: target.manifests,
        hostKeyFingerprint: target.fingerprint,
        ...fields,
      },
    },
  )
  assert.deepEqual(registered.data.registerNode.userErrors, [])
  return registered.data.registerNode.node
}

/** Every entry (dotfiles too), with its bytes, mode and owner. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  return Object.fromEntries(
    await Promise.all(
      names.map(async (n) => {
        const info = await stat(join(dir, n))
        return [n, `${sha256(await readFile(join(dir, n)))} ${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid}`] as const
      }),
    ),
  )
}

async function modeAndOwner(path: string): Promise<{ mode: string; uid: number; gid: number }> {
  const info = await stat(path)
  return { mode: (info.mode & 0o7777).toString(8), uid: info.uid, gid: info.gid }
}

const CREATE = `mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { hash revision path } userErrors { code message } } }`
const UPDATE = `mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { hash revision } previousHash userErrors { code message } } }`
const RESTART = `mutation($input: StaticPodRefInput!) { restartStaticPod(input: $input) { staticPod { hash revision manifest } userErrors { code message } } }`
const ROLLBACK = `mutation($input: RollbackStaticPodInput!) { rollbackStaticPod(input: $input) { staticPod { hash revision manifest } userErrors { code message } } }`
const DELETE = `mutation($input: StaticPodRefInput!) { deleteStaticPod(input: $input) { deleted userErrors { code message } } }`
const LIST = `{ nodes { name privilege agent { reachable lastError } runtimeUnavailableReason
  staticPods(maxAgeSeconds: 0) { name hash manifest runtime { state containers { name state } } } } }`

describe('SUDO nodes: an unprivileged login, root through sudo -n', () => {
  it('the README shows the sudoers rule these tests install', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    const rule = sudoersRule('staticpod', { sftpServer: '/usr/lib/openssh/sftp-server', crictl: '/usr/bin/crictl' })
    assert.ok(readme.includes(`\`\`\`\n${rule}\n\`\`\`\n`), `README.md has no code block with exactly:\n${rule}`)
  })

  it('sshd refuses root here: the node can only be reached as the user', async (t) => {
    const app = await sshFleetApp(t, fleet)
    await register(app, node(0), { name: 'as-root', user: 'root', privilege: 'NONE' })
    const listed = await app.gql(`{ nodes { name agent { reachable lastError } } }`)
    assert.deepEqual(listed.errors?.map((e) => e.extensions?.code), ['NODE_UNREACHABLE'])
    assert.match(listed.data.nodes[0].agent.lastError, /SSH authentication failed \(the node refused the service's key for user root\)/)
  })

  it("with the README's sudoers rule: list, create, update with expectedHash, restart, rollback, delete and crictl's runtime; bytes exact, owner root, mode kept", async (t) => {
    const target = node(0)
    await user.allow(dropInFor(target))
    t.after(() => user.revoke())
    // A manifest kubeadm did not write: 0640, group of the user. A replace must keep both.
    const existing = podYaml('existing', 'registry.k8s.io/pause:3.9')
    await writeFile(join(target.manifests, 'existing.yaml'), existing, { mode: 0o640 })
    await chown(join(target.manifests, 'existing.yaml'), 0, user.gid)
    const app = await sshFleetApp(t, fleet)
    assert.deepEqual(await register(app, target), { name: target.name, user: user.name, privilege: 'SUDO', sftpServer: null })

    const listed = await app.gql(LIST)
    assert.equal(listed.errors, undefined, JSON.stringify(listed.errors))
    const [listedNode] = listed.data.nodes
    assert.equal(listedNode.agent.reachable, true)
    assert.equal(listedNode.runtimeUnavailableReason, null, 'crictl ran through sudo (as the user it could not read the manifests)')
    assert.deepEqual(listedNode.staticPods.map((p: any) => [p.name, p.manifest, p.runtime?.state, p.runtime?.containers]), [
      ['existing', existing, 'READY', [{ name: 'main', state: 'RUNNING' }]],
    ])

    const web = podYaml('web')
    const created = await app.gql(CREATE, { input: { node: target.name, manifest: web } })
    assert.deepEqual(created.data.createStaticPod.userErrors, [])
    assert.equal(await readFile(join(target.manifests, 'web.yaml'), 'utf8'), web)
    assert.deepEqual(await modeAndOwner(join(target.manifests, 'web.yaml')), { mode: '600', uid: 0, gid: 0 }, 'a new manifest: 0600, root, as kubeadm writes them')

    const stale = await app.gql(UPDATE, { input: { node: target.name, name: 'existing', manifest: podYaml('existing', 'nginx:1.28'), expectedHash: sha256('other') } })
    assert.equal(stale.data.updateStaticPod.userErrors[0]?.code, 'CONFLICT')
    const updatedBytes = podYaml('existing', 'nginx:1.28')
    const updated = await app.gql(UPDATE, { input: { node: target.name, name: 'existing', manifest: updatedBytes, expectedHash: listedNode.staticPods[0].hash } })
    assert.deepEqual(updated.data.updateStaticPod.userErrors, [])
    assert.equal(updated.data.updateStaticPod.previousHash, sha256(existing))
    assert.equal(await readFile(join(target.manifests, 'existing.yaml'), 'utf8'), updatedBytes)
    assert.deepEqual(await modeAndOwner(join(target.manifests, 'existing.yaml')), { mode: '640', uid: 0, gid: user.gid }, 'a replaced manifest keeps its mode and owner')

    const restarted = await app.gql(RESTART, { input: { node: target.name, name: 'web' } })
    assert.deepEqual(restarted.data.restartStaticPod.userErrors, [])
    assert.match(restarted.data.restartStaticPod.staticPod.manifest, /staticpod-api\/restartedAt/)
    assert.equal(await readFile(join(target.manifests, 'web.yaml'), 'utf8'), restarted.data.restartStaticPod.staticPod.manifest)

    const rolledBack = await app.gql(ROLLBACK, { input: { node: target.name, name: 'web', revision: created.data.createStaticPod.staticPod.revision } })
    assert.deepEqual(rolledBack.data.rollbackStaticPod.userErrors, [])
    assert.equal(await readFile(join(target.manifests, 'web.yaml'), 'utf8'), web, 'the first revision, byte for byte')
    assert.deepEqual(await modeAndOwner(join(target.manifests, 'web.yaml')), { mode: '600', uid: 0, gid: 0 })

    const deleted = await app.gql(DELETE, { input: { node: target.name, name: 'existing', expectedHash: sha256(updatedBytes) } })
    assert.deepEqual(deleted.data.deleteStaticPod, { deleted: true, userErrors: [] })
    assert.deepEqual(await readdir(target.manifests), ['web.yaml'], 'no temp file, backup or other file left in staticPodPath')

    const runtime = await app.gql(`query($node: String!) { staticPod(node: $node, name: "web", maxAgeSeconds: 0) { runtime { state containers { name state } } } }`, { node: target.name })
    assert.deepEqual(runtime.data.staticPod.runtime, { state: 'READY', containers: [{ name: 'main', state: 'RUNNING' }] })

    // Backups: outside staticPodPath, 0600, root's, whatever the manifest's mode was.
    const backupRoot = join(app.dir, 'ssh-state', target.name, 'backups')
    for (const file of ['existing.yaml', 'web.yaml']) {
      const names = await readdir(join(backupRoot, file))
      assert.ok(names.length > 0, `backups of ${file}`)
      for (const name of names) assert.deepEqual(await modeAndOwner(join(backupRoot, file, name)), { mode: '600', uid: 0, gid: 0 }, `${file}/${name}`)
    }
    const existingBackups = await Promise.all((await readdir(join(backupRoot, 'existing.yaml'))).map((n) => readFile(join(backupRoot, 'existing.yaml', n), 'utf8')))
    assert.ok(existingBackups.includes(existing), 'the bytes kubeadm-or-whoever wrote are kept')
    assert.deepEqual(await modeAndOwner(target.manifests), { mode: '700', uid: 0, gid: 0 }, 'the directory is still root-only')

    // The rule allows what the service runs, and nothing else.
    const bin = join(target.dir, 'bin')
    for (const command of [`sudo -n /bin/sh -c id`, `sudo -n ${sftpServer} -d /`, `sudo -n ${bin}/crictl rmp -a`, `sudo -n ${bin}/crictl pods`]) {
      const run = spawnSync('/usr/bin/su', ['-s', '/bin/sh', user.name, '-c', `${command} </dev/null`], { encoding: 'utf8' })
      assert.deepEqual([run.status, run.stderr.trim()], [1, 'sudo: a password is required'], command)
    }
    const allowed = spawnSync('/usr/bin/su', ['-s', '/bin/sh', user.name, '-c', `sudo -n ${bin}/crictl pods -o json`], { encoding: 'utf8' })
    assert.equal(allowed.status, 0, allowed.stderr)
  })

  it("the node's sftpServer is what sudo runs; the empty string finds it again", async (t) => {
    const target = node(0)
    await user.allow(dropInFor(target))
    t.after(() => user.revoke())
    const app = await sshFleetApp(t, fleet)
    await register(app, target, { sftpServer: '/usr/local/libexec/no-such-sftp-server' })
    const listed = await app.gql(`{ nodes { sftpServer agent { reachable lastError } } }`)
    assert.deepEqual(listed.errors?.map((e) => e.extensions?.code), ['PRIVILEGE_DENIED'])
    assert.match(listed.data.nodes[0].agent.lastError, /sudo -n \/usr\/local\/libexec\/no-such-sftp-server was refused: sudo: a password is required/)
    assert.equal(listed.data.nodes[0].sftpServer, '/usr/local/libexec/no-such-sftp-server')

    const reset = await app.gql(`mutation { updateNode(input: { name: "${target.name}", sftpServer: "" }) { node { sftpServer } userErrors { code } } }`)
    assert.deepEqual(reset.data.updateNode, { node: { sftpServer: null }, userErrors: [] })
    const again = await app.gql(`{ nodes { agent { reachable lastError } } }`)
    assert.equal(again.errors, undefined, JSON.stringify(again.errors))
    assert.equal(again.data.nodes[0].agent.reachable, true)
  })

  it('without the drop-in: PRIVILEGE_DENIED with sudo\'s own words, nothing written, REST 403', async (t) => {
    const target = node(1)
    await writeFile(join(target.manifests, 'existing.yaml'), podYaml('existing'), { mode: 0o600 })
    const before = await snapshot(target.manifests)
    const app = await sshFleetApp(t, fleet)
    await register(app, target)

    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    const [refused] = created.data.createStaticPod.userErrors
    assert.equal(refused?.code, 'PRIVILEGE_DENIED')
    assert.match(refused.message, new RegExp(`sudo -n ${sftpServer} was refused: sudo: a password is required\\. Nothing was read or written`))

    const listed = await app.gql(`{ nodes { agent { reachable lastError } staticPods { name } } }`)
    assert.deepEqual(listed.errors?.map((e) => [e.extensions?.code, e.extensions?.node]), [['PRIVILEGE_DENIED', target.name]])
    assert.equal(listed.data.nodes[0].agent.reachable, false)
    assert.match(listed.data.nodes[0].agent.lastError, /a password is required/)

    const put = await app.app.inject({
      method: 'PUT',
      url: `/api/v1/nodes/${target.name}/staticpods/default/web`,
      headers: { 'content-type': 'application/yaml' },
      payload: podYaml('web'),
    })
    assert.equal(put.statusCode, 403)
    assert.equal(put.json().error.code, 'PRIVILEGE_DENIED')

    assert.deepEqual(await snapshot(target.manifests), before, 'the directory is unchanged')
    assert.equal(existsSync(join(app.dir, 'ssh-state', target.name)), false, 'no lock, no backup: nothing was sent as root')
  })

  it("a drop-in that allows crictl and another SFTP server than the node's: PRIVILEGE_DENIED, nothing written", async (t) => {
    const target = node(1)
    const other = '/usr/libexec/openssh/sftp-server-of-another-distribution'
    await user.allow(dropInFor(target, { sftpServer: other }))
    t.after(() => user.revoke())
    const before = await snapshot(target.manifests)
    const app = await sshFleetApp(t, fleet)
    await register(app, target)
    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.equal(created.data.createStaticPod.userErrors[0]?.code, 'PRIVILEGE_DENIED')
    assert.match(created.data.createStaticPod.userErrors[0].message, /sudo: a password is required/)
    assert.deepEqual(await snapshot(target.manifests), before)
    assert.equal(existsSync(join(app.dir, 'ssh-state', target.name)), false)
  })

  it('a drop-in that names crictl where sudo does not find it: files work, the runtime is null with sudo\'s words', async (t) => {
    const target = node(1)
    await user.allow(dropInFor(target, { crictl: '/usr/bin/crictl' }))
    t.after(() => user.revoke())
    const app = await sshFleetApp(t, fleet)
    await register(app, target)
    await writeFile(join(target.manifests, 'crictl-less.yaml'), podYaml('crictl-less'), { mode: 0o600 })
    const listed = await app.gql(`{ nodes { runtimeUnavailableReason staticPods(maxAgeSeconds: 0) { name runtime { state } } } }`)
    assert.equal(listed.errors, undefined, JSON.stringify(listed.errors))
    assert.equal(listed.data.nodes[0].runtimeUnavailableReason, 'sudo -n crictl pods -o json could not run as root on the node: sudo: a password is required')
    assert.deepEqual(listed.data.nodes[0].staticPods.find((p: any) => p.name === 'crictl-less'), { name: 'crictl-less', runtime: null })
    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.deepEqual(created.data.createStaticPod.userErrors, [])
  })

  it('a login that may not read staticPodPath (privilege NONE, not root): PRIVILEGE_DENIED, not a node without static pods', async (t) => {
    const target = node(2)
    await writeFile(join(target.manifests, 'etcd.yaml'), podYaml('etcd'), { mode: 0o600 })
    const before = await snapshot(target.manifests)
    const app = await sshFleetApp(t, fleet)
    await register(app, target, { privilege: 'NONE' })
    const listed = await app.gql(`{ nodes { agent { reachable lastError } } staticPods(maxAgeSeconds: 0) { name } }`)
    assert.deepEqual(listed.errors?.map((e) => [e.extensions?.code, e.extensions?.node]), [['PRIVILEGE_DENIED', target.name]])
    assert.match(listed.errors?.[0]?.message ?? '', new RegExp(`${target.manifests} cannot be read: permission denied`))
    assert.deepEqual(listed.data.staticPods, [])
    const created = await app.gql(CREATE, { input: { node: target.name, manifest: podYaml('web') } })
    assert.equal(created.data.createStaticPod.userErrors[0]?.code, 'PRIVILEGE_DENIED')
    assert.deepEqual(await snapshot(target.manifests), before)
  })
})
