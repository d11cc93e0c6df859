// NodeFileSystem over SFTP (OpenSSH's sftp-server or internal-sftp), for the
// SSH agent. Every method is one pooled operation: the write path, the lock
// and backups are FileAgent's, written once for both agents.
//
// The OpenSSH extensions used where they exist: posix-rename@openssh.com (plain
// SFTP rename refuses to replace an existing file, which would break the
// atomic replace) and fsync@openssh.com (plain SFTP cannot flush).

import { posix } from 'node:path'
import type { SFTPWrapper, Stats } from 'ssh2'
import { FileExistsError, type NodeDirEntry, type NodeEntryKind, type NodeFileSystem, type WriteNewFileOptions } from './node-fs.ts'

/** Runs one SFTP operation on the node (the pool's run, bound to the node). */
export type SftpRunner = <T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>) => Promise<T>

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 sets them on err.code. */
const NO_SUCH_FILE = 2
const FAILURE = 4

/** Manifests may carry credentials in flags; kubeadm writes them 0600 too. */
const FILE_MODE = 0o600
const EXCLUSIVE_CREATE_ATTEMPTS = 3
const DIR_MODE = 0o755

/** An SFTP failure, naming the operation and the path. */
export class SftpError extends Error {
  override readonly name = 'SftpError'
  /** The SFTP status code, when the server gave one. */
  readonly status: number | undefined

  constructor(operation: string, path: string, cause: unknown) {
    super(`${operation} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.status = statusOf(cause)
  }
}

function statusOf(err: unknown): number | undefined {
  if (err instanceof SftpError) return err.status
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : undefined
}

const isNoSuchFile = (err: unknown): boolean => statusOf(err) === NO_SUCH_FILE

function call<T>(operation: string, path: string, start: (done: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      start((err, value) => (err ? reject(new SftpError(operation, path, err)) : resolve(value as T)))
    } catch (err) {
      // ssh2 throws synchronously for an extension the server does not offer.
      reject(new SftpError(operation, path, err))
    }
  })
}

function kindOf(stats: Stats): NodeEntryKind {
  return stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other'
}

export class SftpFileSystem implements NodeFileSystem {
  constructor(private readonly run: SftpRunner) {}

  readDir(dir: string): Promise<NodeDirEntry[]> {
    return this.run(`listing ${dir}`, async (sftp) => {
      const listed = await call<Array<{ filename: string; attrs: Stats }>>('readdir', dir, (done) => sftp.readdir(dir, done))
      const entries: NodeDirEntry[] = []
      for (const { filename, attrs } of listed) {
        if (filename === '.' || filename === '..') continue
        let stats = attrs
        if (attrs.isSymbolicLink()) {
          // readdir's attributes are lstat's; the kubelet follows links, so follow them too.
          try {
            stats = await call<Stats>('stat', filename, (done) => sftp.stat(posix.join(dir, filename), done))
          } catch {
            entries.push({ name: filename, kind: 'other', size: 0, mtimeMs: 0 })
            continue
          }
        }
        entries.push({ name: filename, kind: kindOf(stats), size: stats.size, mtimeMs: stats.mtime * 1000 })
      }
      return entries
    })
  }

  readFile(path: string): Promise<Buffer | null> {
    return this.run(`reading ${path}`, async (sftp) => {
      try {
        return await call<Buffer>('read', path, (done) => sftp.readFile(path, done))
      } catch (err) {
        if (isNoSuchFile(err)) return null
        throw err
      }
    })
  }

  writeNewFile(path: string, bytes: Uint8Array, options: WriteNewFileOptions): Promise<void> {
    return this.run(`writing ${path}`, async (sftp) => {
      let handle: Buffer | undefined
      for (let attempt = 1; handle === undefined; attempt++) {
        try {
          handle = await call<Buffer>('create', path, (done) => sftp.open(path, options.exclusive ? 'wx' : 'w', { mode: FILE_MODE }, done))
        } catch (err) {
          if (!options.exclusive || statusOf(err) !== FAILURE) throw err
          // OpenSSH reports EEXIST as a plain FAILURE, so ask whether the path
          // exists. If it does not, it may have been removed since (a lock
          // released in between): try again, a few times, before calling the
          // failure something else.
          if (await exists(sftp, path)) throw new FileExistsError(path, { cause: err })
          if (attempt >= EXCLUSIVE_CREATE_ATTEMPTS) throw err
        }
      }
      try {
        const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        await call<number>('write', path, (done) => sftp.write(handle, data, 0, data.length, 0, done))
        await flush(sftp, handle, path)
      } finally {
        await call<void>('close', path, (done) => sftp.close(handle, done)).catch(() => undefined)
      }
    })
  }

  rename(from: string, to: string): Promise<void> {
    return this.run(`renaming ${from}`, (sftp) => call<void>('posix-rename', `${from} to ${to}`, (done) => sftp.ext_openssh_rename(from, to, done)))
  }

  unlink(path: string): Promise<void> {
    return this.run(`removing ${path}`, async (sftp) => {
      try {
        await call<void>('unlink', path, (done) => sftp.unlink(path, done))
      } catch (err) {
        if (!isNoSuchFile(err)) throw err
      }
    })
  }

  mkdirp(dir: string): Promise<void> {
    return this.run(`creating ${dir}`, async (sftp) => {
      if (await isDirectory(sftp, dir)) return
      let path = ''
      for (const part of dir.split('/').filter(Boolean)) {
        path = `${path}/${part}`
        try {
          await call<void>('mkdir', path, (done) => sftp.mkdir(path, { mode: DIR_MODE }, done))
        } catch (err) {
          // Exists already (or was created by someone else just now): fine if it is a directory.
          if (!(await isDirectory(sftp, path))) throw err
        }
      }
    })
  }

  /**
   * SFTP has no directory fsync, but OpenSSH's server opens a directory like a
   * file, and fsync@openssh.com on that handle is fsync(2) on the directory.
   */
  async fsyncDir(dir: string): Promise<void> {
    try {
      await this.run(`flushing ${dir}`, async (sftp) => {
        const handle = await call<Buffer>('open', dir, (done) => sftp.open(dir, 'r', done))
        try {
          await flush(sftp, handle, dir)
        } finally {
          await call<void>('close', dir, (done) => sftp.close(handle, done)).catch(() => undefined)
        }
      })
    } catch {
      // Best effort by contract: a server without the trick still renamed atomically.
    }
  }
}

/** fsync@openssh.com where the server offers it; without it there is nothing more SFTP can do. */
async function flush(sftp: SFTPWrapper, handle: Buffer, path: string): Promise<void> {
  try {
    await call<unknown>('fsync', path, (done) => sftp.ext_openssh_fsync(handle, done))
  } catch (err) {
    if (err instanceof SftpError && /does not support/i.test(err.message)) return
    throw err
  }
}

async function exists(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    await call<Stats>('lstat', path, (done) => sftp.lstat(path, done))
    return true
  } catch {
    return false
  }
}

async function isDirectory(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    return (await call<Stats>('stat', path, (done) => sftp.stat(path, done))).isDirectory()
  } catch {
    return false
  }
}
