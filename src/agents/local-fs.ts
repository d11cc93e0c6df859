// NodeFileSystem on this machine's filesystem (node:fs/promises).

import { constants, type Stats } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { FileExistsError, type NodeDirEntry, type NodeFileSystem, type OpenedFile, type WriteNewFileOptions } from './node-fs.ts'

/** Manifests may carry credentials in flags; kubeadm writes them 0600 too. */
const FILE_MODE = 0o600

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/** The file's mode and owner (symlinks followed, as the kubelet reads it), or null when there is none. */
async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path)
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

  async writeNewFile(path: string, bytes: Uint8Array, options: WriteNewFileOptions): Promise<void> {
    const flags = constants.O_WRONLY | constants.O_CREAT | (options.exclusive ? constants.O_EXCL : constants.O_TRUNC)
    const like = options.sameModeAndOwnerAs === undefined ? null : await statOrNull(options.sameModeAndOwnerAs)
    let handle
    try {
      handle = await open(path, flags, FILE_MODE)
    } catch (err) {
      if (errorCode(err) === 'EEXIST') throw new FileExistsError(path, { cause: err })
      throw err
    }
    try {
      if (like) {
        // The owner first: a change of owner clears set-id bits, which the mode then sets as the target had them.
        await handle.chown(like.uid, like.gid)
        await handle.chmod(like.mode & 0o7777)
      }
      await handle.writeFile(bytes)
      if (options.durable !== false) await handle.sync()
    } finally {
      await handle.close()
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await rename(from, to)
  }

  async unlink(path: string): Promise<void> {
    try {
      await unlink(path)
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err
    }
  }

  async mkdirp(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true })
  }

  async fsyncDir(dir: string): Promise<void> {
    try {
      const handle = await open(dir, constants.O_RDONLY)
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
    } catch {
      // Best effort by contract: some filesystems refuse fsync on a directory.
    }
  }
}
