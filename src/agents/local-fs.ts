// NodeFileSystem on this machine's filesystem (node:fs/promises).

import { constants, type Stats } from 'node:fs'
import { link, lstat, mkdir, open, readdir, readFile, readlink, rename, stat, symlink, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { DirBatch, NodeDirEntry, NodeFileSystem, NodeHandle, NodePipeline, NodeStat, OpenedFile } from './node-fs.ts'

/** Manifests may carry credentials in flags; kubeadm writes them 0600 too. */
const FILE_MODE = 0o600

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

function nodeStat(info: Stats): NodeStat {
  const kind = info.isSymbolicLink() ? 'symlink' : info.isFile() ? 'file' : info.isDirectory() ? 'directory' : 'other'
  return { kind, size: info.size, mtimeMs: info.mtimeMs, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid }
}

async function orNullIfMissing<T>(promise: Promise<T>): Promise<T | null> {
  try {
    return await promise
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return null
    throw err
  }
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink()
  } catch {
    return false
  }
}

export class LocalFileSystem implements NodeFileSystem {
  async readDir(dir: string): Promise<NodeDirEntry[]> {
    const names = await readdir(dir)
    const entries: NodeDirEntry[] = []
    for (const name of names) {
      try {
        // stat, not lstat: the kubelet follows symlinks, so a link to a file is a manifest to it.
        const info = await stat(join(dir, name))
        const kind = info.isFile() ? 'file' : info.isDirectory() ? 'directory' : 'other'
        entries.push({ name, kind, size: info.size, mtimeMs: info.mtimeMs })
      } catch (err) {
        // Gone since readdir: not an entry any more.
        if (errorCode(err) === 'ENOENT' && !(await isSymlink(join(dir, name)))) continue
        // A dangling symlink, or an entry we may not stat: still there, kind unknown.
        entries.push({ name, kind: 'other', size: 0, mtimeMs: 0 })
      }
    }
    return entries
  }

  async readFile(path: string): Promise<Buffer | null> {
    try {
      return await readFile(path)
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null
      throw err
    }
  }

  async withOpenFile<T>(path: string, fn: (file: OpenedFile) => Promise<T>): Promise<T | null> {
    let handle
    try {
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. No effect on a regular file.
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null
      throw err
    }
    try {
      const info = await handle.stat()
      const kind = info.isFile() ? 'file' : info.isDirectory() ? 'directory' : 'other'
      const opened = handle
      return await fn({
        kind,
        size: info.size,
        mtimeMs: info.mtimeMs,
        async read(offset, length) {
          if (kind !== 'file') throw new Error(`${path} is not a regular file`)
          const buffer = Buffer.alloc(length)
          let filled = 0
          while (filled < length) {
            const { bytesRead } = await opened.read(buffer, filled, length - filled, offset + filled)
            if (bytesRead === 0) break
            filled += bytesRead
          }
          return filled === length ? buffer : buffer.subarray(0, filled)
        },
      })
    } finally {
      await handle.close()
    }
  }

  async mkdirp(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true })
  }

  pipeline<T>(_what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    return fn(new LocalPipeline(Promise.resolve()))
  }
}

class LocalHandle implements NodeHandle {
  /** A directory opened with opendir: its entries, read once by the first readdir. */
  listed = false
  constructor(
    readonly path: string,
    readonly file: FileHandle | null,
  ) {}
}

function local(handle: NodeHandle): LocalHandle {
  if (!(handle instanceof LocalHandle)) throw new Error(`${handle.path}: not a handle of this file system`)
  return handle
}

/**
 * The local filesystem has no round trips to save: each request starts when
 * the one before it has finished (whatever its outcome), which is the order
 * NodePipeline promises.
 */
class LocalPipeline implements NodePipeline {
  constructor(private tail: Promise<unknown>) {}

  #next<T>(run: () => Promise<T>): Promise<T> {
    const result = this.tail.then(run, run)
    this.tail = result.catch(() => undefined)
    return result
  }

  open(path: string, how: 'read' | 'create' | 'directory'): Promise<NodeHandle | null> {
    return this.#next(async () => {
      if (how === 'create') return new LocalHandle(path, await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, FILE_MODE))
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. No effect on a regular file.
      const flags = constants.O_RDONLY | (how === 'read' ? constants.O_NONBLOCK | constants.O_NOCTTY : 0)
      const file = await orNullIfMissing(open(path, flags))
      return file && new LocalHandle(path, file)
    })
  }

  read(handle: NodeHandle, offset: number, length: number): Promise<Buffer> {
    return this.#next(async () => {
      const buffer = Buffer.alloc(length)
      let filled = 0
      while (filled < length) {
        const { bytesRead } = await fileOf(handle).read(buffer, filled, length - filled, offset + filled)
        if (bytesRead === 0) break
        filled += bytesRead
      }
      return filled === length ? buffer : buffer.subarray(0, filled)
    })
  }

  write(handle: NodeHandle, bytes: Uint8Array): Promise<void> {
    return this.#next(() => fileOf(handle).writeFile(bytes))
  }

  fsync(handle: NodeHandle): Promise<boolean> {
    return this.#next(async () => {
      await fileOf(handle).sync()
      return true
    })
  }

  setOwnerAndMode(handle: NodeHandle, { uid, gid, mode }: { uid: number; gid: number; mode: number }): Promise<void> {
    return this.#next(async () => {
      await fileOf(handle).chown(uid, gid)
      await fileOf(handle).chmod(mode)
    })
  }

  fstat(handle: NodeHandle): Promise<NodeStat> {
    return this.#next(async () => nodeStat(await fileOf(handle).stat()))
  }

  close(handle: NodeHandle): void {
    const file = local(handle).file
    if (file) void this.#next(() => file.close()).catch(() => undefined)
  }

  opendir(path: string): Promise<NodeHandle> {
    return this.#next(async () => {
      const info = await stat(path)
      if (!info.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, opendir '${path}'`), { code: 'ENOTDIR' })
      return new LocalHandle(path, null)
    })
  }

  readonly readdirKnowsEnd = true

  readdir(handle: NodeHandle): Promise<DirBatch | null> {
    return this.#next(async () => {
      const dir = local(handle)
      if (dir.listed) return null
      dir.listed = true
      const entries: Array<{ name: string; stat: NodeStat }> = []
      for (const name of await readdir(dir.path)) {
        const info = await orNullIfMissing(lstat(join(dir.path, name)))
        if (info) entries.push({ name, stat: nodeStat(info) }) // else gone since readdir
      }
      return { entries, last: true }
    })
  }

  stat(path: string): Promise<NodeStat | null> {
    return this.#next(async () => {
      const info = await orNullIfMissing(stat(path))
      return info && nodeStat(info)
    })
  }

  lstat(path: string): Promise<NodeStat | null> {
    return this.#next(async () => {
      const info = await orNullIfMissing(lstat(path))
      return info && nodeStat(info)
    })
  }

  rename(from: string, to: string): Promise<void> {
    return this.#next(() => rename(from, to))
  }

  unlink(path: string): Promise<void> {
    return this.#next(async () => {
      await orNullIfMissing(unlink(path))
    })
  }

  mkdir(path: string): Promise<void> {
    return this.#next(async () => {
      await mkdir(path, { mode: 0o755 })
    })
  }

  link(existing: string, path: string): Promise<void> {
    return this.#next(() => link(existing, path))
  }

  symlink(target: string, path: string): Promise<void> {
    return this.#next(() => symlink(target, path))
  }

  readlink(path: string): Promise<string | null> {
    return this.#next(() => orNullIfMissing(readlink(path)))
  }

  behind<T>(_what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    return fn(new LocalPipeline(this.tail))
  }
}

function fileOf(handle: NodeHandle): FileHandle {
  const file = local(handle).file
  if (!file) throw new Error(`${handle.path} is a directory listing, not an open file`)
  return file
}
