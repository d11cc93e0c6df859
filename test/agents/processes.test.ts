// The local agent against other processes on the same node: a writer killed
// with SIGKILL between the flushed temp file and the rename, and the node
// lock held by another process (test/support/agent-child.ts).
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { TEMP_FILE_SUFFIX } from '../../src/agents/file-agent.ts'
import { LOCK_FILE_NAME } from '../../src/agents/node-lock.ts'
import { createLocalAgent } from '../../src/agents/local.ts'
import { isServiceError } from '../../src/errors.ts'
import { LOCAL_AGENT_DEFAULTS } from '../support/agent-defaults.ts'
import { spawnTsChild } from '../support/child-process.ts'

const childScript = fileURLToPath(new URL('../support/agent-child.ts', import.meta.url))
const CHILD_READY_MS = 20_000

async function tempNode(t: TestContext): Promise<{ root: string; manifests: string; state: string }> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-proc-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  return { root, manifests: join(root, 'manifests'), state: join(root, 'state') }
}

const oldManifest = Buffer.from('apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n# old\n')
const newManifest = Buffer.from('apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n# new\n')

test('kill -9 between the flushed temp file and the rename: the old file stays whole, the next write cleans up', async (t) => {
  const dirs = await tempNode(t)
  const first = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: dirs.manifests, stateDir: dirs.state })
  await first.writeManifest('kube-apiserver.yaml', oldManifest)
  const contentFile = join(dirs.root, 'new.yaml')
  await writeFile(contentFile, newManifest)

  const child = spawnTsChild(t, childScript, ['pause-before-rename', dirs.manifests, dirs.state, 'kube-apiserver.yaml', contentFile])
  const paused = await child.waitForLine('PAUSED ', CHILD_READY_MS)
  const tempPath = paused.slice('PAUSED '.length)
  // The temp file is complete on disk at this point: the crash comes after the flush.
  assert.deepEqual(await readFile(tempPath), newManifest)
  await child.kill9()

  const names = await readdir(dirs.manifests)
  assert.deepEqual(names.filter((n) => !n.startsWith('.')), ['kube-apiserver.yaml'], 'the kubelet sees only the target')
  assert.deepEqual(names.filter((n) => n.startsWith('.')), [tempPath.slice(dirs.manifests.length + 1)])
  assert.ok(tempPath.endsWith(TEMP_FILE_SUFFIX))
  assert.deepEqual(await readFile(join(dirs.manifests, 'kube-apiserver.yaml')), oldManifest, 'byte-identical old file')
  assert.deepEqual(await readdir(dirs.state), [LOCK_FILE_NAME], 'the dead writer left its lock')

  // A fresh agent: takes over the dead process's lock, writes, and sweeps the leftover temp file.
  const fresh = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockWaitMs: 2_000 })
  await fresh.withLock({ actor: 'operator', instance: 'recovery' }, () => fresh.writeManifest('kube-apiserver.yaml', newManifest))
  assert.deepEqual(await readdir(dirs.manifests), ['kube-apiserver.yaml'])
  assert.deepEqual(await readFile(join(dirs.manifests, 'kube-apiserver.yaml')), newManifest)
  assert.deepEqual(await readdir(dirs.state), [])
})

test('the node lock between two processes: LOCKED while the other holds it, taken over once it is killed', async (t) => {
  const dirs = await tempNode(t)
  const child = spawnTsChild(t, childScript, ['hold-lock', dirs.manifests, dirs.state, 'child-holder'])
  await child.waitForLine('HOLDING ', CHILD_READY_MS)

  // The default TTL (30 s) is far longer than this test: only the holder's death can free the lock.
  const agent = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'n1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockWaitMs: 300 })
  const owner = { actor: 'parent', instance: 'test' }
  await assert.rejects(agent.withLock(owner, async () => assert.fail('must not run while the child holds the lock')), (err: unknown) => {
    assert.ok(isServiceError(err))
    assert.equal(err.code, 'LOCKED')
    assert.match(err.message, new RegExp(`locked by child-holder \\(instance lock-holder, .+ pid ${child.pid}\\) since \\d{4}-\\d\\d-\\d\\dT`))
    return true
  })

  await child.kill9()
  const started = performance.now()
  // The lock is a symlink whose target is the holder record (node-lock.ts).
  const holder = await agent.withLock(owner, async () => JSON.parse(await readlink(join(dirs.state, LOCK_FILE_NAME))) as { actor: string; pid: number })
  assert.equal(holder.actor, 'parent')
  assert.equal(holder.pid, process.pid)
  // Far below the 30 s TTL (the bound allows for a loaded CI machine).
  assert.ok(performance.now() - started < 10_000, 'taken over at once, without waiting for expiry')
  assert.deepEqual(await readdir(dirs.state), [])
})
