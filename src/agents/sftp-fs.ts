// NodeFileSystem over SFTP (OpenSSH's sftp-server or internal-sftp), for the
// SSH agent. Every method is one pooled operation: the write path, the lock
// and backups are FileAgent's, written once for both agents.
//
// The OpenSSH extensions used where they exist: posix-rename@openssh.com (plain
// SFTP rename refuses to replace an existing file, which would break the
// atomic replace) and fsync@openssh.com (plain SFTP cannot flush).

import { posix } from 'node:path'
import type { SFTPWrapper, Stats } from 'ssh2'
import { FileExistsError, type NodeDirEntry, type NodeEntryKind, type NodeFileSystem, type OpenedFile, type WriteNewFileOptions } from './node-fs.ts'

/** Runs one SFTP operation on the node (the pool's run, bound to the node). */
export type SftpRunner = <T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>) => Promise<T>

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 sets them on err.code. */
const END_OF_FILE = 1
const NO_SUCH_FILE = 2
const PERMISSION_DENIED = 3
const FAILURE = 4

/** Manifests may carry credentials in flags; kubeadm writes them 0600 too. */
const FILE_MODE = 0o600
const EXCLUSIVE_CREATE_ATTEMPTS = 3
const DIR_MODE = 0o755
/** Below OpenSSH's and ssh2's read limits (256 KiB less headers), above any sane manifest. */
const READ_CHUNK_BYTES = 128 * 1024

/**
 * What a status means, in fixed words: the node's own status text (and
 * anything ssh2 says about a request that got no status) is not passed on.
 */
const STATUS_TEXT: Record<number, string> = {
  1: 'end of file',
  2: 'no such file or directory',
  3: 'permission denied',
  4: 'failure',
  5: 'bad message',
  6: 'no connection',
  7: 'connection lost',
  8: 'operation unsupported',
}

/**
 * An SFTP failure, naming the operation and the path, and the SFTP status in
 * fixed words; a request that failed without a status (the channel closed,
 * ssh2 refused it) says so without ssh2's text, which stays on `cause` (the
 * pool logs it at debug level).
 */
export class SftpError extends Error {
  override readonly name = 'SftpError'
  /** The SFTP status code, when the server gave one. */
  readonly status: number | undefined
  /** The server does not offer the extension the request needs (ssh2 refuses to send it). */
  readonly unsupported: boolean
  /** The node's user may not do this (node-fs.ts isPermissionDenied). */
  readonly permissionDenied: boolean
  /** There is no such file or directory (node-fs.ts isNoSuchFile). */
  readonly noSuchFile: boolean

  constructor(operation: string, path: string, cause: unknown) {
    const status = statusOf(cause)
    const unsupported = status === undefined && cause instanceof Error && /does not support/i.test(cause.message)
    const why =
      status !== undefined
        ? (STATUS_TEXT[status] ?? `SFTP status ${status}`)
        : unsupported
          ? "the node's SFTP server does not support it"
          : 'the SFTP request failed'
    super(`${operation} ${path}: ${why}`, { cause })
    this.status = status
    this.unsupported = unsupported
    this.permissionDenied = status === PERMISSION_DENIED
    this.noSuchFile = status === NO_SUCH_FILE
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
      const listed = await readWholeDir(sftp, dir)
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
      let handle: Buffer
      try {
        handle = await call<Buffer>('open', path, (done) => sftp.open(path, 'r', done))
      } catch (err) {
        if (isNoSuchFile(err)) return null
        throw err
      }
      try {
        return await readWholeFile(sftp, handle, path)
      } finally {
        closeUnawaited(sftp, handle)
      }
    })
  }

  withOpenFile<T>(path: string, fn: (file: OpenedFile) => Promise<T>): Promise<T | null> {
    return this.run(`reading ${path}`, async (sftp) => {
      // stat first: the server's open of a FIFO would wait for a writer.
      let stats: Stats
      try {
        stats = await call<Stats>('stat', path, (done) => sftp.stat(path, done))
      } catch (err) {
        if (isNoSuchFile(err)) return null
        throw err
      }
      if (!stats.isFile()) {
        return fn({ kind: kindOf(stats), size: stats.size, mtimeMs: stats.mtime * 1000, read: () => Promise.reject(new Error(`${path} is not a regular file`)) })
      }
      let handle: Buffer
      try {
        handle = await call<Buffer>('open', path, (done) => sftp.open(path, 'r', done))
      } catch (err) {
        if (isNoSuchFile(err)) return null
        throw err
      }
      try {
        // The open file's own attributes: the file stat saw may have been replaced since.
        const opened = await call<Stats>('fstat', path, (done) => sftp.fstat(handle, done))
        return await fn({
          kind: kindOf(opened),
          size: opened.size,
          mtimeMs: opened.mtime * 1000,
          read: (offset, length) => readRange(sftp, handle, path, offset, length),
        })
      } finally {
        closeUnawaited(sftp, handle)
      }
    })
  }

  writeNewFile(path: string, bytes: Uint8Array, options: WriteNewFileOptions): Promise<void> {
    return this.run(`writing ${path}`, async (sftp) => {
      // Sent before the open, so answered before it: no round trip of its own.
      const model = options.sameModeAndOwnerAs === undefined ? Promise.resolve(null) : statOrNull(sftp, options.sameModeAndOwnerAs)
      model.catch(() => undefined) // awaited below once the file is open; a failed open goes first
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
        const like = await model
        // Sent together, answered in order: one round trip for the owner, the mode, the bytes and their flush.
        // The owner first: a change of owner clears set-id bits, which the mode then sets as the target had them.
        const attributes = like
          ? Promise.all([
              call<void>('fchown', path, (done) => sftp.fsetstat(handle, { uid: like.uid, gid: like.gid }, done)),
              call<void>('fchmod', path, (done) => sftp.fsetstat(handle, { mode: like.mode & 0o7777 }, done)),
            ])
          : Promise.resolve()
        const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        const written = call<number>('write', path, (done) => sftp.write(handle, data, 0, data.length, 0, done))
        const flushed = options.durable === false ? Promise.resolve() : flush(sftp, handle, path)
        await Promise.all([attributes, written, flushed])
      } finally {
        closeUnawaited(sftp, handle)
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
          closeUnawaited(sftp, handle)
        }
      })
    } catch {
      // Best effort by contract: a server without the trick still renamed atomically.
    }
  }
}

/**
 * Closing a handle cannot fail in a way that matters once its data is flushed
 * (or, for reads, once it is read), and the server answers requests in order:
 * whatever is sent next on this channel runs after the close. So the close is
 * sent and not waited for, which saves a round trip per file.
 */
function closeUnawaited(sftp: SFTPWrapper, handle: Buffer): void {
  try {
    sftp.close(handle, () => undefined)
  } catch {
    // The channel is gone: the server closed the handle with it.
  }
}

/**
 * One READ of a chunk bigger than any sane manifest: for a regular file,
 * OpenSSH's server (which this agent needs anyway, for posix-rename) returns
 * short reads only at the end, so a manifest costs one round trip after the
 * open. A full chunk means there may be more.
 */
async function readWholeFile(sftp: SFTPWrapper, handle: Buffer, path: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for (;;) {
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES)
    const bytesRead = await call<number>('read', path, (done) => sftp.read(handle, buffer, 0, READ_CHUNK_BYTES, total, done))
    if (bytesRead === 0) break
    chunks.push(buffer.subarray(0, bytesRead))
    total += bytesRead
    if (bytesRead < READ_CHUNK_BYTES) break
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total)
}

/**
 * length bytes from offset (fewer at the end of the file), in reads the
 * server accepts, sent together: answered in order, one round trip for all.
 */
async function readRange(sftp: SFTPWrapper, handle: Buffer, path: string, offset: number, length: number): Promise<Buffer> {
  const pieces: Array<Promise<Buffer>> = []
  for (let at = 0; at < length; at += READ_CHUNK_BYTES) {
    const size = Math.min(READ_CHUNK_BYTES, length - at)
    const buffer = Buffer.allocUnsafe(size)
    pieces.push(
      call<number>('read', path, (done) => sftp.read(handle, buffer, 0, size, offset + at, done)).then(
        (bytesRead) => buffer.subarray(0, bytesRead),
        (err: unknown) => {
          if (statusOf(err) === END_OF_FILE) return Buffer.alloc(0)
          throw err
        },
      ),
    )
  }
  const read = await Promise.all(pieces)
  // A short piece is the end of the file (a regular file's reads are short only there): nothing after it counts.
  const shortAt = read.findIndex((piece, i) => piece.length < Math.min(READ_CHUNK_BYTES, length - i * READ_CHUNK_BYTES))
  return Buffer.concat(shortAt < 0 ? read : read.slice(0, shortAt + 1))
}

/**
 * opendir, then two READDIRs sent at once: a directory that fits one answer
 * (OpenSSH sends up to 100 names) is listed in two round trips, the second
 * READDIR coming back as end of file.
 */
async function readWholeDir(sftp: SFTPWrapper, dir: string): Promise<Array<{ filename: string; attrs: Stats }>> {
  const handle = await call<Buffer>('opendir', dir, (done) => sftp.opendir(dir, done))
  const next = (): Promise<Array<{ filename: string; attrs: Stats }> | null> =>
    call<Array<{ filename: string; attrs: Stats }>>('readdir', dir, (done) => sftp.readdir(handle, done)).catch((err) => {
      if (statusOf(err) === END_OF_FILE) return null
      throw err
    })
  try {
    const entries: Array<{ filename: string; attrs: Stats }> = []
    for (;;) {
      const batches = await Promise.all([next(), next()])
      for (const batch of batches) if (batch) entries.push(...batch)
      if (batches.includes(null)) return entries
    }
  } finally {
    closeUnawaited(sftp, handle)
  }
}

/** fsync@openssh.com where the server offers it; without it there is nothing more SFTP can do. */
async function flush(sftp: SFTPWrapper, handle: Buffer, path: string): Promise<void> {
  try {
    await call<unknown>('fsync', path, (done) => sftp.ext_openssh_fsync(handle, done))
  } catch (err) {
    if (err instanceof SftpError && err.unsupported) return
    throw err
  }
}

/** The file's mode and owner (symlinks followed, as the kubelet reads them), or null when there is none. */
async function statOrNull(sftp: SFTPWrapper, path: string): Promise<Stats | null> {
  try {
    return await call<Stats>('stat', path, (done) => sftp.stat(path, done))
  } catch (err) {
    if (isNoSuchFile(err)) return null
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
