// The write path of the file agent, on real temp directories through the local filesystem.
import assert from 'node:assert/strict'
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { watch } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { isServiceError } from '../../src/errors.ts'
import { BACKUPS_KEPT, BACKUPS_PRUNE_SLACK, FileAgent, MAX_FILE_NAME_BYTES, TEMP_FILE_SUFFIX, type FileAgentOptions } from '../../src/agents/file-agent.ts'
import { LocalFileSystem } from '../../src/agents/local-fs.ts'
import type { NodeFileSystem, NodeHandle, NodePipeline } from '../../src/agents/node-fs.ts'

const owner = { actor: 'alice', instance: 'test' }

async function tempNode(t: TestContext): Promise<{ root: string; manifests: string; state: string }> {
  const root = await mkdtemp(join(tmpdir(), 'staticpod-agent-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  const manifests = join(root, 'manifests')
  const state = join(root, 'state')
  await mkdir(manifests)
  await mkdir(state)
  return { root, manifests, state }
}

function agentOn(
  dirs: { manifests: string; state: string },
  options: Partial<FileAgentOptions> = {},
  fs: NodeFileSystem = new LocalFileSystem(),
): FileAgent {
  return new FileAgent(fs, { nodeName: 'node-1', staticPodPath: dirs.manifests, stateDir: dirs.state, lockTtlMs: 30_000, lockWaitMs: 10_000, ...options })
}

const manifest = (n: number): Buffer => Buffer.from(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {n: "${n}"}\n`)

function assertServiceError(code: string, field?: string[]) {
  return (err: unknown): boolean => {
    assert.ok(isServiceError(err), `expected a ServiceError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (field) assert.deepEqual(err.field, field)
    return true
  }
}

test('writeManifest writes exactly the bytes given, and replaces them', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  // Not UTF-8, a NUL, no trailing newline: the agent must not care.
  const odd = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x0d, 0x0a, 0x42])
  await agent.writeManifest('odd.yaml', odd)
  assert.deepEqual(await readFile(join(dirs.manifests, 'odd.yaml')), odd)

  await agent.writeManifest('web.yaml', manifest(1))
  await agent.writeManifest('web.yaml', manifest(2))
  assert.deepEqual(await readFile(join(dirs.manifests, 'web.yaml')), manifest(2))
  assert.deepEqual(await agent.readManifest('web.yaml'), manifest(2))
  assert.equal((await stat(join(dirs.manifests, 'web.yaml'))).mode & 0o777, 0o600)
  assert.deepEqual((await readdir(dirs.manifests)).sort(), ['odd.yaml', 'web.yaml'])

  await agent.writeManifest('empty.yaml', new Uint8Array())
  assert.equal((await readFile(join(dirs.manifests, 'empty.yaml'))).length, 0)
})

test('readManifest returns null for a file that does not exist', async (t) => {
  const agent = agentOn(await tempNode(t))
  assert.equal(await agent.readManifest('nothing.yaml'), null)
})

test('during 200 writes no file the kubelet would read appears besides the target', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  await agent.writeManifest('kube-apiserver.yaml', manifest(0))

  const seenByWatch = new Set<string>()
  const watcher = watch(dirs.manifests, (_event, name) => {
    if (name) seenByWatch.add(name.toString())
  })
  t.after(() => watcher.close())
  // inotify and a busy poll, to see names that exist only for a moment.
  const seenByPoll = new Set<string>()
  let writing = true
  const poller = (async () => {
    while (writing) for (const name of await readdir(dirs.manifests)) seenByPoll.add(name)
  })()

  for (let i = 1; i <= 200; i++) {
    await agent.withLock(owner, () => agent.writeManifest('kube-apiserver.yaml', manifest(i)))
  }
  writing = false
  await poller
  await new Promise((resolve) => setTimeout(resolve, 50)) // let the last inotify events arrive

  const visible = (names: Set<string>) => [...names].filter((n) => !n.startsWith('.'))
  assert.deepEqual(visible(seenByWatch), ['kube-apiserver.yaml'])
  assert.deepEqual(visible(seenByPoll), ['kube-apiserver.yaml'])
  assert.ok([...seenByWatch].some((n) => n.endsWith(TEMP_FILE_SUFFIX)), 'the watch saw the temp dotfiles')
  assert.deepEqual(await readdir(dirs.manifests), ['kube-apiserver.yaml'], 'no temp file is left')
  assert.deepEqual(await readFile(join(dirs.manifests, 'kube-apiserver.yaml')), manifest(200))
})

test('listManifestDir lists what the kubelet reads: every non-dot entry, with the content of files', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs, { maxFileBytes: 100 })
  await writeFile(join(dirs.manifests, 'web.yaml'), manifest(1))
  await writeFile(join(dirs.manifests, 'web.yaml.bak'), manifest(0))
  await writeFile(join(dirs.manifests, '.hidden.yaml'), manifest(9))
  await writeFile(join(dirs.manifests, 'big.yaml'), Buffer.alloc(101, 0x61))
  await mkdir(join(dirs.manifests, 'subdir'))
  await symlink(join(dirs.manifests, 'web.yaml'), join(dirs.manifests, 'link.yaml'))
  await symlink(join(dirs.manifests, 'gone.yaml'), join(dirs.manifests, 'dangling.yaml'))

  const entries = await agent.listManifestDir()
  assert.deepEqual(
    entries.map((e) => ({ name: e.name, kind: e.kind, size: e.size, text: e.bytes && Buffer.from(e.bytes).toString() })),
    [
      { name: 'big.yaml', kind: 'file', size: 101, text: undefined },
      { name: 'dangling.yaml', kind: 'other', size: 0, text: undefined },
      { name: 'link.yaml', kind: 'file', size: manifest(1).length, text: manifest(1).toString() },
      { name: 'subdir', kind: 'directory', size: entries.find((e) => e.name === 'subdir')?.size ?? -1, text: undefined },
      { name: 'web.yaml', kind: 'file', size: manifest(1).length, text: manifest(1).toString() },
      { name: 'web.yaml.bak', kind: 'file', size: manifest(0).length, text: manifest(0).toString() },
    ],
  )
})

test('deleteManifest removes the file, and is quiet when it is already gone', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  await agent.writeManifest('web.yaml', manifest(1))
  await agent.deleteManifest('web.yaml')
  assert.deepEqual(await readdir(dirs.manifests), [])
  await agent.deleteManifest('web.yaml')
})

test('every file name argument is checked: one plain, visible name', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  await writeFile(join(dirs.root, 'outside.yaml'), 'precious')
  const bad = ['', '.', '..', '.hidden.yaml', '../outside.yaml', 'a/b.yaml', '/etc/passwd', 'a\\b.yaml', 'nul\0.yaml', 'x'.repeat(MAX_FILE_NAME_BYTES + 1)]
  for (const name of bad) {
    await assert.rejects(agent.writeManifest(name, manifest(1)), assertServiceError('VALIDATION_FAILED', ['fileName']), name)
    await assert.rejects(agent.readManifest(name), assertServiceError('VALIDATION_FAILED', ['fileName']), name)
    await assert.rejects(agent.deleteManifest(name), assertServiceError('VALIDATION_FAILED', ['fileName']), name)
    await assert.rejects(agent.backup(name, manifest(1)), assertServiceError('VALIDATION_FAILED', ['fileName']), name)
  }
  assert.equal(await readFile(join(dirs.root, 'outside.yaml'), 'utf8'), 'precious')
  assert.deepEqual(await readdir(dirs.manifests), [])
  // The longest name allowed still works, temp file name included.
  await agent.writeManifest('y'.repeat(MAX_FILE_NAME_BYTES), manifest(1))
})

test('a manifest over the size limit is refused before anything is written', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs, { maxFileBytes: 10 })
  await assert.rejects(agent.writeManifest('web.yaml', Buffer.alloc(11)), assertServiceError('VALIDATION_FAILED', ['manifest']))
  assert.deepEqual(await readdir(dirs.manifests), [])
})

/** The local filesystem, with one request failing the way a full disk does, or a temp file read back with other bytes than were written. */
class FailingFileSystem extends LocalFileSystem {
  constructor(private readonly failing: 'rename' | 'write' | 'keeps-other-bytes') {
    super()
  }

  override pipeline<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    return super.pipeline(what, (p) => fn(this.#failingIn(p)))
  }

  #failingIn(p: NodePipeline): NodePipeline {
    const enospc = (what: string) => Object.assign(new Error(`ENOSPC: no space left on device, ${what}`), { code: 'ENOSPC' })
    return new Proxy(p, {
      get: (target, key) => {
        if (key === 'rename' && this.failing === 'rename') return async (from: string, to: string) => Promise.reject(enospc(`rename '${from}' -> '${to}'`))
        if (key === 'write' && this.failing === 'write') {
          return async (handle: NodeHandle, bytes: Uint8Array) => {
            if (!handle.path.endsWith(TEMP_FILE_SUFFIX)) return target.write(handle, bytes)
            // Created and half written, then the disk is full.
            await target.write(handle, bytes.subarray(0, Math.floor(bytes.length / 2)))
            throw enospc('write')
          }
        }
        if (key === 'read' && this.failing === 'keeps-other-bytes') {
          return async (handle: NodeHandle, offset: number, length: number) => {
            const bytes = await target.read(handle, offset, length)
            if (handle.path.endsWith(TEMP_FILE_SUFFIX) && bytes.length > 0) bytes[0] = bytes[0]! ^ 0xff // a bit flipped on the way to the disk
            return bytes
          }
        }
        if (key === 'behind') return <U>(w: string, f: (q: NodePipeline) => Promise<U>) => target.behind(w, (q) => f(this.#failingIn(q)))
        const value: unknown = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }
}

for (const failing of ['rename', 'write'] as const) {
  test(`a failed ${failing} leaves the old file intact and no temp file, and says why`, async (t) => {
    const dirs = await tempNode(t)
    await agentOn(dirs).writeManifest('web.yaml', manifest(1))
    const agent = agentOn(dirs, {}, new FailingFileSystem(failing))
    await assert.rejects(
      agent.withLock(owner, () => agent.writeManifest('web.yaml', manifest(2))),
      (err: unknown) => {
        assertServiceError('WRITE_FAILED')(err)
        assert.match((err as Error).message, /web\.yaml.*node-1.*ENOSPC/)
        return true
      },
    )
    assert.deepEqual(await readdir(dirs.manifests), ['web.yaml'])
    assert.deepEqual(await readFile(join(dirs.manifests, 'web.yaml')), manifest(1))
    assert.deepEqual(await readdir(dirs.state), [], 'the lock was released')
  })
}

test('bytes the node did not keep fail the write before the rename: the old file stays, the temp file goes', async (t) => {
  const dirs = await tempNode(t)
  await agentOn(dirs).writeManifest('web.yaml', manifest(1))
  const agent = agentOn(dirs, {}, new FailingFileSystem('keeps-other-bytes'))
  await assert.rejects(
    agent.withLock(owner, () => agent.writeManifest('web.yaml', manifest(2))),
    (err: unknown) => {
      assertServiceError('WRITE_FAILED')(err)
      assert.match((err as Error).message, /web\.yaml.*node-1.*differ/)
      return true
    },
  )
  assert.deepEqual(await readdir(dirs.manifests), ['web.yaml'])
  assert.deepEqual(await readFile(join(dirs.manifests, 'web.yaml')), manifest(1))
  assert.deepEqual(await readdir(dirs.state), [], 'the lock was released')
})

test('a leftover temp file is removed by the next write or delete under the lock, not outside it', async (t) => {
  const dirs = await tempNode(t)
  const agent = agentOn(dirs)
  const leftover = `.web.yaml.0123456789ab${TEMP_FILE_SUFFIX}`
  const notOurs = '.swap.yaml.swp'
  await writeFile(join(dirs.manifests, leftover), 'half')
  await writeFile(join(dirs.manifests, notOurs), 'vim')

  // Without the lock it could be another process's write in flight: left alone.
  await agent.writeManifest('web.yaml', manifest(1))
  assert.deepEqual((await readdir(dirs.manifests)).sort(), [leftover, notOurs, 'web.yaml'].sort())

  await agent.withLock(owner, () => agent.writeManifest('web.yaml', manifest(2)))
  assert.deepEqual((await readdir(dirs.manifests)).sort(), [notOurs, 'web.yaml'].sort())

  await writeFile(join(dirs.manifests, leftover), 'half')
  await agent.withLock(owner, () => agent.deleteManifest('web.yaml'))
  assert.deepEqual(await readdir(dirs.manifests), [notOurs])
})

test('backups land outside staticPodPath, byte for byte, and only the newest 20 per file are kept', async (t) => {
  const dirs = await tempNode(t)
  let now = Date.parse('2024-06-10T06:13:20.000Z')
  const agent = agentOn(dirs, { clock: () => new Date(now) })

  const first = await agent.backup('web.yaml', manifest(0))
  assert.match(first.path, new RegExp(`^${dirs.state}/backups/web\\.yaml/20240610T061320\\.000Z-[0-9a-f]{12}\\.yaml$`))
  assert.deepEqual(await readFile(first.path), manifest(0))

  const paths = [first.path]
  // Pruning runs when BACKUPS_KEPT + BACKUPS_PRUNE_SLACK have piled up; this many backups make it run once.
  for (let i = 1; i < BACKUPS_KEPT + BACKUPS_PRUNE_SLACK; i++) {
    now += 1_000
    paths.push((await agent.withLock(owner, () => agent.backup('web.yaml', manifest(i)))).path)
  }
  await agent.backup('etcd.yaml', manifest(99))

  const kept = (await readdir(join(dirs.state, 'backups', 'web.yaml'))).sort()
  assert.equal(kept.length, BACKUPS_KEPT)
  assert.deepEqual(kept.map((name) => join(dirs.state, 'backups', 'web.yaml', name)), paths.slice(-BACKUPS_KEPT))
  assert.deepEqual(await readFile(paths.at(-1) ?? ''), manifest(BACKUPS_KEPT + BACKUPS_PRUNE_SLACK - 1))
  assert.equal((await readdir(join(dirs.state, 'backups', 'etcd.yaml'))).length, 1)
  assert.deepEqual(await readdir(dirs.manifests), [], 'nothing in staticPodPath')
})

test('a first backup makes its directories; temp files a killed process left among the backups go with the first backup under the lock', async (t) => {
  const dirs = await tempNode(t)
  // stateDir itself is not there yet: the first backup makes every directory on the way.
  const state = join(dirs.state, 'not', 'yet')
  const first = agentOn({ manifests: dirs.manifests, state })
  await first.writeManifest('web.yaml', manifest(1))
  await first.withLock(owner, async () => {
    await first.backup('web.yaml', manifest(1))
    await first.writeManifest('web.yaml', manifest(2))
  })
  assert.equal((await readdir(join(state, 'backups', 'web.yaml'))).length, 1)
  // A file with no backup directory yet, on a node that has some: the temp file opened ahead of time in backups/ is renamed into a new one.
  await first.writeManifest('etcd.yaml', manifest(3))
  await first.withLock(owner, async () => {
    await first.backup('etcd.yaml', manifest(3))
    await first.writeManifest('etcd.yaml', manifest(4))
  })
  assert.deepEqual(await readFile(join(state, 'backups', 'etcd.yaml', (await readdir(join(state, 'backups', 'etcd.yaml')))[0] ?? '')), manifest(3))

  const leftInRoot = `.backup.0123456789ab${TEMP_FILE_SUFFIX}`
  const leftInDir = `.20240610T061320.000Z-0123456789ab.yaml.0123456789ab${TEMP_FILE_SUFFIX}`
  const notOurs = 'README'
  await writeFile(join(state, 'backups', leftInRoot), 'half')
  await writeFile(join(state, 'backups', 'web.yaml', leftInDir), 'half')
  await writeFile(join(state, 'backups', notOurs), 'notes')
  const tempsLeft = async () => [
    ...(await readdir(join(state, 'backups'))).filter((n) => n.endsWith(TEMP_FILE_SUFFIX)),
    ...(await readdir(join(state, 'backups', 'web.yaml'))).filter((n) => n.endsWith(TEMP_FILE_SUFFIX)),
  ]

  // The process restarted: a new agent. Without the lock a temp file could be another process's write in flight: left alone.
  const second = agentOn({ manifests: dirs.manifests, state })
  await second.backup('web.yaml', manifest(2))
  assert.deepEqual((await tempsLeft()).sort(), [leftInRoot, leftInDir].sort())

  const third = agentOn({ manifests: dirs.manifests, state })
  await third.withLock(owner, async () => {
    await third.backup('web.yaml', manifest(2))
    await third.writeManifest('web.yaml', manifest(5))
  })
  assert.deepEqual(await tempsLeft(), [], 'the leftovers are gone once the lock is released')
  assert.ok((await readdir(join(state, 'backups'))).includes(notOurs), 'what is not a temp file of ours stays')
  assert.equal((await readdir(join(state, 'backups', 'web.yaml'))).length, 3, 'three backups of web.yaml')
})

/** A LocalFileSystem whose pipelines refuse every hard link as a node on another filesystem does (EXDEV), counting them. */
function refusingLinks(): { fs: LocalFileSystem; links: () => number } {
  let links = 0
  const inner = new LocalFileSystem()
  const fs = Object.create(inner) as LocalFileSystem
  fs.pipeline = (what, fn) =>
    inner.pipeline(what, (p) =>
      fn(
        new Proxy(p, {
          get(target, property, receiver) {
            if (property === 'link') {
              return (existing: string, path: string) => {
                links++
                return Promise.reject(Object.assign(new Error(`EXDEV: cross-device link not permitted, link '${existing}' -> '${path}'`), { code: 'EXDEV' }))
              }
            }
            const value: unknown = Reflect.get(target, property, receiver)
            return typeof value === 'function' ? value.bind(target) : value
          },
        }),
      ),
    )
  return { fs, links: () => links }
}

/** What a write does under the lock in the service: list, back up what was read, then replace (or delete) it. */
async function replaceUnderLock(agent: FileAgent, fileName: string, next: Buffer | null): Promise<string> {
  return agent.withLock(owner, async () => {
    const current = (await agent.listManifestDir()).find((entry) => entry.name === fileName)
    assert.ok(current?.bytes, `${fileName} was listed with its bytes`)
    const { path } = await agent.backup(fileName, current.bytes)
    if (next) await agent.writeManifest(fileName, next)
    else await agent.deleteManifest(fileName)
    return path
  })
}

test('a backup of a root-only manifest being replaced or removed is that very file, linked; one others may read, a symlinked one, or where the node will not link, is a 0600 copy', async (t) => {
  const dirs = await tempNode(t)
  // No stateDir yet: the first linked backup makes its directories.
  const state = join(dirs.state, 'not', 'yet')
  const agent = agentOn({ manifests: dirs.manifests, state })
  const web = join(dirs.manifests, 'web.yaml')
  await agent.writeManifest('web.yaml', manifest(1)) // 0600, root's (the tests run as root, as a kubelet host's writer is)
  const before = await stat(web)
  const linked = await replaceUnderLock(agent, 'web.yaml', manifest(2))
  const backup = await stat(linked)
  assert.equal(backup.ino, before.ino, 'the backup is the replaced file itself')
  assert.equal(backup.nlink, 1, 'and only the backup now: the manifest is another file')
  assert.notEqual((await stat(web)).ino, before.ino)
  assert.deepEqual(await readFile(linked), manifest(1))
  assert.deepEqual(await readFile(web), manifest(2))
  assert.equal(backup.mode & 0o7777, 0o600)

  // A delete keeps the removed file the same way.
  const deletedIno = (await stat(web)).ino
  const removed = await replaceUnderLock(agent, 'web.yaml', null)
  assert.equal((await stat(removed)).ino, deletedIno)
  assert.deepEqual(await readFile(removed), manifest(2))
  assert.deepEqual(await readdir(dirs.manifests), [])

  // Others may read it (0644): a copy, 0600, so the backups' directories (0755) do not show it to them.
  await agent.writeManifest('open.yaml', manifest(3))
  await chmod(join(dirs.manifests, 'open.yaml'), 0o644)
  const openIno = (await stat(join(dirs.manifests, 'open.yaml'))).ino
  const copied = await replaceUnderLock(agent, 'open.yaml', manifest(4))
  assert.notEqual((await stat(copied)).ino, openIno)
  assert.equal((await stat(copied)).mode & 0o7777, 0o600)
  assert.deepEqual(await readFile(copied), manifest(3))

  // A symlinked manifest: a link would be of the symlink, not of the bytes.
  await mkdir(join(dirs.root, 'real'))
  await writeFile(join(dirs.root, 'real', 'etcd.yaml'), manifest(5), { mode: 0o600 })
  await symlink(join(dirs.root, 'real', 'etcd.yaml'), join(dirs.manifests, 'etcd.yaml'))
  const ofSymlink = await replaceUnderLock(agent, 'etcd.yaml', manifest(6))
  assert.ok((await lstat(ofSymlink)).isFile(), 'a file, not a symlink')
  assert.deepEqual(await readFile(ofSymlink), manifest(5))

  // A node that will not link (another filesystem): a copy, and this agent stops asking.
  const refusing = refusingLinks()
  const other = agentOn({ manifests: dirs.manifests, state }, {}, refusing.fs)
  await other.writeManifest('api.yaml', manifest(7))
  const first = await replaceUnderLock(other, 'api.yaml', manifest(8))
  const second = await replaceUnderLock(other, 'api.yaml', manifest(9))
  assert.equal(refusing.links(), 1, 'asked once')
  assert.deepEqual([await readFile(first), await readFile(second)], [manifest(7), manifest(8)])
  assert.deepEqual(await readFile(join(dirs.manifests, 'api.yaml')), manifest(9))
  assert.deepEqual((await readdir(dirs.manifests)).sort(), ['api.yaml', 'etcd.yaml', 'open.yaml'], 'no temp file left')
})

test('a linked backup is removed again when the change fails: the manifest stays, and no second name of it is left to follow its edits', async (t) => {
  const dirs = await tempNode(t)
  const web = join(dirs.manifests, 'web.yaml')
  // The rename over the target refused (a read-only bind mount of the file, say): the one visible request fails.
  const inner = new LocalFileSystem()
  const refusingRename = Object.create(inner) as LocalFileSystem
  refusingRename.pipeline = (what, fn) =>
    inner.pipeline(what, (p) =>
      fn(
        new Proxy(p, {
          get(target, property, receiver) {
            if (property === 'rename') {
              return (from: string, to: string) =>
                to === web ? Promise.reject(Object.assign(new Error(`EBUSY: resource busy or locked, rename '${from}' -> '${to}'`), { code: 'EBUSY' })) : target.rename(from, to)
            }
            const value: unknown = Reflect.get(target, property, receiver)
            return typeof value === 'function' ? value.bind(target) : value
          },
        }),
      ),
    )
  await agentOn(dirs).writeManifest('web.yaml', manifest(1))
  await assert.rejects(replaceUnderLock(agentOn(dirs, {}, refusingRename), 'web.yaml', manifest(2)), assertServiceError('WRITE_FAILED'))
  assert.deepEqual(await readFile(web), manifest(1), 'the old manifest')
  assert.equal((await stat(web)).nlink, 1, 'no backup shares its file')
  assert.deepEqual(await readdir(join(dirs.state, 'backups', 'web.yaml')), [])
  assert.deepEqual(await readdir(dirs.manifests), ['web.yaml'], 'no temp file left')
})

/** Records the requests of every pipeline in the order they are sent: "opendir <path>", "readdir", "open-read <path>". */
class RecordingFileSystem extends LocalFileSystem {
  readonly sent: string[] = []

  override pipeline<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    return super.pipeline(what, (p) => fn(this.#recording(p)))
  }

  #recording(p: NodePipeline): NodePipeline {
    return new Proxy(p, {
      get: (target, key) => {
        if (key === 'opendir') return (path: string) => (this.sent.push(`opendir ${path}`), target.opendir(path))
        if (key === 'readdir') return (handle: NodeHandle) => (this.sent.push('readdir'), target.readdir(handle))
        if (key === 'open') return (path: string, how: 'read' | 'create' | 'directory') => (how === 'read' && this.sent.push(`open-read ${path}`), target.open(path, how))
        if (key === 'behind') return <U>(w: string, f: (q: NodePipeline) => Promise<U>) => target.behind(w, (q) => f(this.#recording(q)))
        const value: unknown = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }
}

test('files expected at first contact are opened with the directory, before its READDIR; a listing finds what is there whatever the hint', async (t) => {
  const dirs = await tempNode(t)
  await writeFile(join(dirs.manifests, 'web.yaml'), manifest(1))
  await writeFile(join(dirs.manifests, 'big.yaml'), Buffer.concat([manifest(2), Buffer.from(`# ${'x'.repeat(40_000)}\n`)]))
  await mkdir(join(dirs.manifests, 'subdir'))
  const listedBy = async (hint: string[] | null) => {
    const fs = new RecordingFileSystem()
    const agent = agentOn(dirs, {}, fs)
    if (hint) agent.expectFiles(hint)
    const entries = await agent.withLock(owner, () => agent.listManifestDir())
    const firstReaddir = fs.sent.indexOf('readdir')
    assert.ok(firstReaddir > 0, `a READDIR was sent: ${fs.sent.join(', ')}`)
    return { entries, before: fs.sent.slice(0, firstReaddir).filter((r) => r.startsWith('open-read')), agent, fs }
  }
  const plain = await listedBy(null)
  assert.deepEqual(plain.before, [], 'without a hint, files are opened once the directory is read')
  // Hinted: an existing file, a bigger one, one that is not there, a directory, and names no file may have (ignored).
  const hinted = await listedBy(['web.yaml', 'big.yaml', 'gone.yaml', 'subdir', '../etc/passwd', '.hidden'])
  assert.deepEqual(
    hinted.before.sort(),
    ['big.yaml', 'gone.yaml', 'subdir', 'web.yaml'].map((name) => `open-read ${join(dirs.manifests, name)}`).sort(),
    'the hinted files that could be manifests are opened before the READDIR, nothing else',
  )
  assert.deepEqual(hinted.entries, plain.entries, 'the same listing')

  // Once it has listed, a hint changes nothing: the agent opens what the last listing found.
  const { agent, fs } = hinted
  fs.sent.length = 0
  agent.expectFiles(['gone.yaml'])
  await agent.withLock(owner, () => agent.listManifestDir())
  assert.deepEqual(fs.sent.filter((r) => r.startsWith('open-read')).sort(), ['big.yaml', 'web.yaml'].map((name) => `open-read ${join(dirs.manifests, name)}`).sort())
})

test('stateDir inside staticPodPath, or relative paths, are refused at construction', async (t) => {
  const dirs = await tempNode(t)
  const fs = new LocalFileSystem()
  const make = (staticPodPath: string, stateDir: string) => () => new FileAgent(fs, { nodeName: 'n', staticPodPath, stateDir, lockTtlMs: 30_000, lockWaitMs: 10_000 })
  assert.throws(make(dirs.manifests, join(dirs.manifests, '.state')), /must not be inside staticPodPath/)
  assert.throws(make(dirs.manifests, `${dirs.manifests}/`), /must not be inside staticPodPath/)
  assert.throws(make(dirs.manifests, join(dirs.manifests, 'a', '..', 'b')), /must not be inside staticPodPath/)
  assert.throws(make('manifests', dirs.state), /absolute/)
  // A sibling whose name merely starts the same is fine.
  make(dirs.manifests, `${dirs.manifests}-state`)()
})

test('runtime and kubelet reports delegate, and say why when they cannot', async (t) => {
  const dirs = await tempNode(t)
  const bare = agentOn(dirs)
  assert.equal((await bare.runtimeStatus()).available, false)
  assert.equal((await bare.kubeletHealth()).available, false)

  const wired = agentOn(dirs, {
    runtime: async () => ({ available: true, pods: [] }),
    kubelet: async () => {
      throw new Error('tunnel closed')
    },
  })
  assert.deepEqual(await wired.runtimeStatus(), { available: true, pods: [] })
  const kubelet = await wired.kubeletHealth()
  assert.equal(kubelet.available, false)
  assert.match(kubelet.available ? '' : kubelet.reason, /tunnel closed/)
})
