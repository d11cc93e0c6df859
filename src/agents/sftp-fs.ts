// NodeFileSystem over SFTP (OpenSSH's sftp-server or internal-sftp), for the
// SSH agent. Every method is one pooled operation: the write path, the lock
// and backups are FileAgent's and NodeLock's, written once for both agents.
// A pipeline (SftpPipeline) sends each request the moment it is made: the
// server carries them out and answers them in that order, so what does not
// need an earlier answer costs no round trip of its own.
//
// The OpenSSH extensions used where they exist: posix-rename@openssh.com (plain
// SFTP rename refuses to replace an existing file, which would break the
// atomic replace), fsync@openssh.com (plain SFTP cannot flush) and
// hardlink@openssh.com (a backup made by linking, not copying: file-agent.ts).

import { posix } from 'node:path'
import type { SFTPWrapper, Stats } from 'ssh2'
import type { DirBatch, NodeDirEntry, NodeEntryKind, NodeFileSystem, NodeHandle, NodePipeline, NodeStat, OpenedFile } from './node-fs.ts'

/** Runs one SFTP operation on the node (the pool's run, bound to the node). */
export type SftpRunner = <T>(what: string, fn: (sftp: SFTPWrapper) => Promise<T>) => Promise<T>

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 sets them on err.code. */
const END_OF_FILE = 1
const NO_SUCH_FILE = 2
const PERMISSION_DENIED = 3

/** Manifests may carry credentials in flags; kubeadm writes them 0600 too. */
const FILE_MODE = 0o600
const DIR_MODE = 0o755
/** S_ISUID | S_ISGID: what a change of a file's owner clears. */
const SET_ID_BITS = 0o6000
/**
 * One WRITE's data, below what ssh2 sends in one request to any server (it
 * splits longer writes itself, but sends each part only after the answer to
 * the one before: the flush sent behind them would then overtake them).
 */
const WRITE_CHUNK_BYTES = 31 * 1024
/** Below OpenSSH's and ssh2's read limits (256 KiB less headers), above any sane manifest. */
const READ_CHUNK_BYTES = 128 * 1024
/**
 * OpenSSH's sftp-server answers a READDIR with up to 100 names, and with
 * fewer only when it reached the end of the directory (process_readdir: it
 * reads entries until it has 100 or readdir(3) says there are no more). So
 * from it, a batch of fewer is the last, and the READDIR that would only
 * answer "end" is not sent.
 */
const OPENSSH_READDIR_BATCH = 100

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

  pipeline<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    return this.run(what, (sftp) => fn(new SftpPipeline(sftp, this.run)))
  }
}

class SftpHandle implements NodeHandle {
  constructor(
    readonly path: string,
    readonly raw: Buffer,
    /** The session it is a handle of: on any other, the same bytes may name another open file. */
    readonly session: SFTPWrapper,
  ) {}
}

function nodeStat(stats: Stats): NodeStat {
  const kind = stats.isSymbolicLink() ? 'symlink' : kindOf(stats)
  return { kind, size: stats.size, mtimeMs: stats.mtime * 1000, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid }
}

async function orNullIfMissing<T>(promise: Promise<T>): Promise<T | null> {
  try {
    return await promise
  } catch (err) {
    if (isNoSuchFile(err)) return null
    throw err
  }
}

/** ssh2's view of the server, for what depends on it (SYMLINK's encoding, READDIR's batches). */
interface Ssh2SftpInternals {
  _isOpenSSH?: boolean
  _extensions?: Record<string, unknown>
}

/** One READDIR's names as the server sent them, '.' and '..' included (ssh2's option full, which its types leave out). */
function readdirFull(sftp: SFTPWrapper, handle: Buffer, done: (err: Error | undefined, list: Array<{ filename: string; attrs: Stats }>) => void): void {
  const readdir = sftp.readdir as unknown as (handle: Buffer, options: { full: boolean }, cb: typeof done) => void
  readdir.call(sftp, handle, { full: true }, done)
}

/** The SFTP server is OpenSSH's: it offers OpenSSH's extensions (what this agent needs of it anyway). */
function isOpenSshSftpServer(sftp: SFTPWrapper): boolean {
  return (sftp as unknown as Ssh2SftpInternals)._extensions?.['posix-rename@openssh.com'] !== undefined
}

/**
 * Every method sends its request at once, on the one SFTP session of the
 * node's connection; OpenSSH's server carries requests out in the order it
 * receives them and answers each in turn (NodePipeline).
 */
class SftpPipeline implements NodePipeline {
  readonly readdirKnowsEnd: boolean

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly run: SftpRunner,
  ) {
    this.readdirKnowsEnd = isOpenSshSftpServer(sftp)
  }

  /**
   * ssh2 drops a request made on a session that has closed without ever
   * answering it (only those outstanding when it closed are failed): a
   * pipeline that goes on after a failure must hear at once that the session is gone.
   */
  #gone(operation: string, path: string): Promise<never> | undefined {
    const state = this.sftp as unknown as { readable?: boolean; outgoing?: { state?: string } }
    const closed = state.readable === false || (state.outgoing?.state !== undefined && state.outgoing.state !== 'open')
    return closed ? Promise.reject(new SftpError(operation, path, new Error('Channel is not open'))) : undefined
  }

  #raw(handle: NodeHandle): Buffer {
    if (!(handle instanceof SftpHandle) || handle.session !== this.sftp) throw new SftpError('using a handle', handle.path, new Error('not a handle of this SFTP session'))
    return handle.raw
  }

  #call<T>(operation: string, path: string, start: (done: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    return this.#gone(operation, path) ?? call(operation, path, start)
  }

  open(path: string, how: 'read' | 'create' | 'directory'): Promise<NodeHandle | null> {
    const { sftp } = this
    if (how === 'create') {
      return this.#call<Buffer>('create', path, (done) => sftp.open(path, 'xw+', { mode: FILE_MODE }, done)).then((h) => new SftpHandle(path, h, this.sftp))
    }
    // A directory opens like a file on OpenSSH's server, and fsync@openssh.com on it is fsync(2) on the directory.
    return orNullIfMissing(this.#call<Buffer>('open', path, (done) => sftp.open(path, 'r', done))).then((h) => h && new SftpHandle(path, h, this.sftp))
  }

  read(handle: NodeHandle, offset: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length)
    return this.#call<number>('read', handle.path, (done) => this.sftp.read(this.#raw(handle), buffer, 0, length, offset, done)).then(
      (bytesRead) => buffer.subarray(0, bytesRead),
      (err: unknown) => {
        if (statusOf(err) === END_OF_FILE) return Buffer.alloc(0)
        throw err
      },
    )
  }

  write(handle: NodeHandle, bytes: Uint8Array): Promise<void> {
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const parts: Array<Promise<number>> = []
    for (let at = 0; at < data.length; at += WRITE_CHUNK_BYTES) {
      const size = Math.min(WRITE_CHUNK_BYTES, data.length - at)
      parts.push(this.#call<number>('write', handle.path, (done) => this.sftp.write(this.#raw(handle), data, at, size, at, done)))
    }
    return Promise.all(parts).then(() => undefined)
  }

  fsync(handle: NodeHandle): Promise<boolean> {
    const gone = this.#gone('fsync', handle.path)
    if (gone) return gone
    try {
      return flush(this.sftp, this.#raw(handle), handle.path)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * One FSETSTAT with both, unless the mode has set-id bits: OpenSSH's
   * server applies a request's mode before its owner (process_fsetstat:
   * permissions, times, then uid/gid), and the change of owner would clear
   * them again. Then two requests, the owner first, sent together.
   */
  setOwnerAndMode(handle: NodeHandle, { uid, gid, mode }: { uid: number; gid: number; mode: number }): Promise<void> {
    const set = (attrs: { uid: number; gid: number } | { mode: number } | { uid: number; gid: number; mode: number }): Promise<void> =>
      this.#call<void>('fsetstat', handle.path, (done) => this.sftp.fsetstat(this.#raw(handle), attrs, done))
    if ((mode & SET_ID_BITS) === 0) return set({ uid, gid, mode })
    return Promise.all([set({ uid, gid }), set({ mode })]).then(() => undefined)
  }

  fstat(handle: NodeHandle): Promise<NodeStat> {
    return this.#call<Stats>('fstat', handle.path, (done) => this.sftp.fstat(this.#raw(handle), done)).then(nodeStat)
  }

  close(handle: NodeHandle): void {
    if (handle instanceof SftpHandle && handle.session === this.sftp) closeUnawaited(this.sftp, handle.raw)
  }

  opendir(path: string): Promise<NodeHandle> {
    return this.#call<Buffer>('opendir', path, (done) => this.sftp.opendir(path, done)).then((h) => new SftpHandle(path, h, this.sftp))
  }

  readdir(handle: NodeHandle): Promise<DirBatch | null> {
    // full: with '.' and '..', which OpenSSH's server counts in its 100 (ssh2 would leave them out of the batch).
    return this.#call<Array<{ filename: string; attrs: Stats }>>('readdir', handle.path, (done) => readdirFull(this.sftp, this.#raw(handle), done)).then(
      (batch) => ({
        entries: batch.filter((e) => e.filename !== '.' && e.filename !== '..').map((e) => ({ name: e.filename, stat: nodeStat(e.attrs) })),
        last: this.readdirKnowsEnd && batch.length < OPENSSH_READDIR_BATCH,
      }),
      (err: unknown) => {
        if (statusOf(err) === END_OF_FILE) return null
        throw err
      },
    )
  }

  stat(path: string): Promise<NodeStat | null> {
    return orNullIfMissing(this.#call<Stats>('stat', path, (done) => this.sftp.stat(path, done))).then((s) => s && nodeStat(s))
  }

  lstat(path: string): Promise<NodeStat | null> {
    return orNullIfMissing(this.#call<Stats>('lstat', path, (done) => this.sftp.lstat(path, done))).then((s) => s && nodeStat(s))
  }

  rename(from: string, to: string): Promise<void> {
    return this.#call<void>('posix-rename', `${from} to ${to}`, (done) => this.sftp.ext_openssh_rename(from, to, done))
  }

  unlink(path: string): Promise<void> {
    return orNullIfMissing(this.#call<void>('unlink', path, (done) => this.sftp.unlink(path, done))).then(() => undefined)
  }

  mkdir(path: string): Promise<void> {
    return this.#call<void>('mkdir', path, (done) => this.sftp.mkdir(path, { mode: DIR_MODE }, done))
  }

  link(existing: string, path: string): Promise<void> {
    return this.#call<void>('hardlink', `${existing} to ${path}`, (done) => this.sftp.ext_openssh_hardlink(existing, path, done))
  }

  symlink(target: string, path: string): Promise<void> {
    // OpenSSH's server takes SYMLINK's two paths in the other order than the
    // draft says. ssh2 swaps them when the SSH server's banner says OpenSSH;
    // the SFTP server is what counts, and this agent needs OpenSSH's (its
    // extensions) anyway: so swap them here when ssh2 would not.
    const swap = isOpenSshSftpServer(this.sftp) && (this.sftp as unknown as Ssh2SftpInternals)._isOpenSSH !== true
    return this.#call<void>('symlink', path, (done) => (swap ? this.sftp.symlink(path, target, done) : this.sftp.symlink(target, path, done)))
  }

  readlink(path: string): Promise<string | null> {
    return orNullIfMissing(this.#call<string>('readlink', path, (done) => this.sftp.readlink(path, done)))
  }

  behind<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T> {
    // Requests already sent on this session are ahead of anything sent on it later; on another session they are not.
    return this.run(what, (sftp) => {
      if (sftp !== this.sftp) return Promise.reject(new Error(`${what}: the SFTP session changed`))
      return fn(new SftpPipeline(sftp, this.run))
    })
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
    call<Array<{ filename: string; attrs: Stats }>>('readdir', dir, (done) => readdirFull(sftp, handle, done)).catch((err) => {
      if (statusOf(err) === END_OF_FILE) return null
      throw err
    })
  try {
    const entries: Array<{ filename: string; attrs: Stats }> = []
    const knowsEnd = isOpenSshSftpServer(sftp)
    for (;;) {
      const batches = await Promise.all(knowsEnd ? [next()] : [next(), next()])
      for (const batch of batches) {
        if (batch === null) return entries
        for (const entry of batch) if (entry.filename !== '.' && entry.filename !== '..') entries.push(entry)
        if (knowsEnd && batch.length < OPENSSH_READDIR_BATCH) return entries
      }
    }
  } finally {
    closeUnawaited(sftp, handle)
  }
}

/** fsync@openssh.com where the server offers it (true); without it (false) there is nothing more SFTP can do. */
async function flush(sftp: SFTPWrapper, handle: Buffer, path: string): Promise<boolean> {
  try {
    await call<unknown>('fsync', path, (done) => sftp.ext_openssh_fsync(handle, done))
    return true
  } catch (err) {
    if (err instanceof SftpError && err.unsupported) return false
    throw err
  }
}

async function isDirectory(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    return (await call<Stats>('stat', path, (done) => sftp.stat(path, done))).isDirectory()
  } catch {
    return false
  }
}
