// The few file operations a node agent needs, small enough that both the local
// filesystem (local-fs.ts) and SFTP (the SSH agent) can do each of them in one
// step. Every rule about how they are combined (atomic replace, the node lock,
// backups) lives once, in file-agent.ts, on top of this interface.
//
// Paths are absolute POSIX paths on the node.

export type NodeEntryKind = 'file' | 'directory' | 'other'

export interface NodeDirEntry {
  name: string
  /** What the entry is once symlinks are followed, as the kubelet sees it. */
  kind: NodeEntryKind
  size: number
  mtimeMs: number
}

/**
 * Thrown by writeNewFile({ exclusive: true }) when the path already exists.
 * Implementations map their own "already exists" failure (EEXIST, SFTP's
 * FAILURE on O_EXCL ...) to this class, so the lock code can tell "someone
 * else holds it" apart from every other failure.
 */
export class FileExistsError extends Error {
  override readonly name = 'FileExistsError'
  readonly path: string

  constructor(path: string, options?: { cause?: unknown }) {
    super(`${path} already exists`, options)
    this.path = path
  }
}

export function isFileExistsError(err: unknown): err is FileExistsError {
  return err instanceof FileExistsError
}

/**
 * "Permission denied" (EACCES, EPERM, SFTP's PERMISSION_DENIED): the node's
 * user may not do this. Implementations pass their own errors on; this tells
 * them apart, so the agent can say PRIVILEGE_DENIED rather than "unreachable"
 * or, for a directory it may not list, "no static pods".
 */
export function isPermissionDenied(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  if ('permissionDenied' in err && err.permissionDenied === true) return true
  return 'code' in err && (err.code === 'EACCES' || err.code === 'EPERM')
}

/**
 * "No such file or directory" (ENOENT, SFTP's NO_SUCH_FILE): implementations
 * pass their own errors on; this tells them apart.
 */
export function isNoSuchFile(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  if ('noSuchFile' in err && err.noSuchFile === true) return true
  return 'code' in err && err.code === 'ENOENT'
}

export interface WriteNewFileOptions {
  /** Create with O_CREAT|O_EXCL: fail with FileExistsError if the path exists. */
  exclusive: boolean
  /**
   * Give the new file the permission bits, owner and group of this file (its
   * target, about to be replaced), when it exists. Otherwise, and without
   * it, a new file is 0600 (manifests may carry credentials in flags; kubeadm
   * writes them so) and belongs to the writer: root, on a kubelet host. Done
   * on the open file, before it has the name the kubelet reads.
   */
  sameModeAndOwnerAs?: string
  /**
   * Flush the bytes to stable storage before resolving (default true). Only
   * for files worthless after a power cut anyway, such as the node lock (its
   * holder's connection does not survive the node's reboot either).
   */
  durable?: boolean
}

/** A file opened for reading (NodeFileSystem.withOpenFile). */
export interface OpenedFile {
  /** What it is, symlinks followed; only a 'file' can be read. */
  kind: NodeEntryKind
  /** Its size when it was opened. */
  size: number
  mtimeMs: number
  /** Up to length bytes from offset: fewer only at the end of the file. */
  read(offset: number, length: number): Promise<Buffer>
}

export interface NodeFileSystem {
  /** Every entry of dir, dotfiles included. Fails if dir cannot be read. */
  readDir(dir: string): Promise<NodeDirEntry[]>
  /** The whole file, or null if it does not exist. */
  readFile(path: string): Promise<Buffer | null>
  /**
   * Opens path for reading and runs fn on it, then closes it; null when there
   * is no such file. For reading part of a file (the end of a log) or a
   * bounded one: fn reads what it needs. Never blocks on a FIFO or a device:
   * what is not a regular file is not opened for reading, and fn is told its kind.
   * fn must not use this file system itself (over SFTP, fn runs inside one of the node's operations).
   */
  withOpenFile<T>(path: string, fn: (file: OpenedFile) => Promise<T>): Promise<T | null>
  /**
   * Creates (or truncates, when not exclusive) path, with the mode and owner
   * the options ask for, writes bytes, flushes them to stable storage (unless
   * durable is false) and closes the file.
   */
  writeNewFile(path: string, bytes: Uint8Array, options: WriteNewFileOptions): Promise<void>
  /** Atomically replaces `to` (if it exists) with `from`. Same filesystem only. */
  rename(from: string, to: string): Promise<void>
  /** Removes path; no error if it is already gone. */
  unlink(path: string): Promise<void>
  /** Creates dir and its missing parents; no error if it exists. */
  mkdirp(dir: string): Promise<void>
  /**
   * Flushes dir's entries (so a rename survives a power cut). Best effort:
   * never fails, because not every filesystem or protocol can do it.
   */
  fsyncDir(dir: string): Promise<void>
}
