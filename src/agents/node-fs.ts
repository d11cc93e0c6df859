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

export interface WriteNewFileOptions {
  /** Create with O_CREAT|O_EXCL: fail with FileExistsError if the path exists. */
  exclusive: boolean
  /**
   * Flush the bytes to stable storage before resolving (default true). Only
   * for files worthless after a power cut anyway, such as the node lock (its
   * holder's connection does not survive the node's reboot either).
   */
  durable?: boolean
}

export interface NodeFileSystem {
  /** Every entry of dir, dotfiles included. Fails if dir cannot be read. */
  readDir(dir: string): Promise<NodeDirEntry[]>
  /** The whole file, or null if it does not exist. */
  readFile(path: string): Promise<Buffer | null>
  /**
   * Creates (or truncates, when not exclusive) path, writes bytes, flushes them
   * to stable storage (unless durable is false) and closes the file.
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
