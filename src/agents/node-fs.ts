// The few file operations a node agent needs, small enough that both the local
// filesystem (local-fs.ts) and SFTP (the SSH agent) can do each of them in one
// step: a few whole operations for reading (diagnosis), and a pipeline of
// single requests for the write path and the lock. Every rule about how they
// are combined (atomic replace, the node lock, backups) lives once, in
// file-agent.ts and node-lock.ts, on top of this interface.
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

/**
 * "File exists" (EEXIST). Only the local filesystem says so: over SFTP an
 * existing path and a failing disk are the same FAILURE status.
 */
export function isAlreadyExists(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'EEXIST'
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

/** What stat, lstat, fstat and a directory listing tell about an entry. */
export interface NodeStat {
  /** What it is; for lstat and a listing, a symlink is 'symlink' (stat and fstat follow it). */
  kind: NodeEntryKind | 'symlink'
  size: number
  mtimeMs: number
  /** Permission bits, with set-id and sticky (mode & 0o7777). */
  mode: number
  uid: number
  gid: number
}

/** Entries of a directory, as one readdir returns them. */
export interface DirBatch {
  entries: Array<{ name: string; stat: NodeStat }>
  last: boolean
}

/** An open file or directory on the node, valid inside the pipeline that opened it. */
export interface NodeHandle {
  readonly path: string
}

/**
 * Requests to the node that are sent at once, without waiting for the
 * answers of earlier ones, and carried out by the node in the order they
 * were made: OpenSSH's sftp-server reads its requests one at a time and
 * answers each before it reads the next, and the local filesystem starts
 * each one when the one before it has finished. So a request made after
 * another runs after it, whatever the answers, and a chain of requests that
 * depends only on success costs one round trip: send them all, look at the
 * answers after, undo on the first failure (file-agent.ts). A request that
 * needs an earlier answer (a handle) is made when that answer is there.
 *
 * Failures come as the implementation's own errors (isNoSuchFile and
 * isPermissionDenied tell them apart); only what is marked returns null.
 */
export interface NodePipeline {
  /**
   * 'read': an existing file, for reading (null when there is none);
   * 'create': a new file, O_CREAT|O_EXCL, 0600, for writing and reading back;
   * 'directory': a directory, only to flush it (fsync) after entries in it changed (null when there is none).
   */
  open(path: string, how: 'read' | 'create' | 'directory'): Promise<NodeHandle | null>
  /** Up to length bytes from offset; fewer only at the end of the file. */
  read(handle: NodeHandle, offset: number, length: number): Promise<Buffer>
  /** All of bytes at offset 0, in as many requests as it takes, sent at once. */
  write(handle: NodeHandle, bytes: Uint8Array): Promise<void>
  /** Flushes the file (or directory) to stable storage; false when the node cannot (SFTP without fsync@openssh.com). */
  fsync(handle: NodeHandle): Promise<boolean>
  /** The file's owner, then its mode (a change of owner clears set-id bits, which the mode then sets as asked). */
  setOwnerAndMode(handle: NodeHandle, attrs: { uid: number; gid: number; mode: number }): Promise<void>
  fstat(handle: NodeHandle): Promise<NodeStat>
  /** Sent, not waited for: nothing depends on its answer (a file is flushed before, and what is sent next runs after). */
  close(handle: NodeHandle): void
  /** Fails when the directory cannot be read (isNoSuchFile: there is none). */
  opendir(path: string): Promise<NodeHandle>
  /**
   * The next entries (lstat's view, '.' and '..' left out), or null at the
   * end; last: the node said these are the last ones, so the READDIR that
   * would answer "end" need not be sent.
   */
  readdir(handle: NodeHandle): Promise<DirBatch | null>
  /** Whether readdir can say a batch is the last one; where it cannot, the end is a READDIR of its own, sent with the one before (file-agent.ts). */
  readonly readdirKnowsEnd: boolean
  /** Symlinks followed; null when there is no such entry (or the link dangles). */
  stat(path: string): Promise<NodeStat | null>
  /** The entry itself; null when there is none. */
  lstat(path: string): Promise<NodeStat | null>
  /** Atomically replaces `to` (if it exists) with `from` (POSIX rename; SFTP: posix-rename@openssh.com). */
  rename(from: string, to: string): Promise<void>
  /** Removes path; no error if it is already gone. */
  unlink(path: string): Promise<void>
  /** Creates the directory (0755), its parent being there; fails if anything is at path already (as mkdir(2)). */
  mkdir(path: string): Promise<void>
  /**
   * Makes path a second name of the file at existing (link(2): a symlink at
   * existing is linked as itself, not followed); fails if path exists, if the
   * two are on different filesystems, or where the node cannot (SFTP without
   * hardlink@openssh.com): the caller copies instead.
   */
  link(existing: string, path: string): Promise<void>
  /** Creates path as a symlink to target; fails if path exists (as anything). */
  symlink(target: string, path: string): Promise<void>
  /** What the symlink at path points to; null when there is no such entry. Fails when path is not a symlink. */
  readlink(path: string): Promise<string | null>
  /**
   * A second pipeline, with its own requests, whose requests all run after
   * every request this one has made so far: for work that is to happen behind
   * something (a listing behind the lock that makes it mean something) without
   * waiting for its answer. Over SFTP it fails, sending nothing, if the
   * session is not the one this pipeline's requests went to.
   */
  behind<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T>
}

export interface NodeFileSystem {
  /** Every entry of dir, dotfiles included, symlinks followed. Fails if dir cannot be read. */
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
  /** Creates dir and its missing parents (0755); no error if it exists. */
  mkdirp(dir: string): Promise<void>
  /**
   * Runs fn with a pipeline of requests to the node (NodePipeline), as one
   * operation on it (over SSH: one pooled operation, with its timeout).
   * Requests fn leaves unanswered when it returns (closes) still go out.
   */
  pipeline<T>(what: string, fn: (p: NodePipeline) => Promise<T>): Promise<T>
}
