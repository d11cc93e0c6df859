// A node agent does what the service needs done on one node, and nothing that
// needs a rule: the rules (validation, compare-and-swap, history, audit) live in
// the services. Two implementations: the local filesystem (local.ts) and SSH.
//
// Paths given to an agent are file names inside the node's staticPodPath; the
// agent never accepts a path with a '/' in it, so nothing outside staticPodPath
// can be written through it.

import type { DirEntry } from '../manifest/types.ts'
import type { KubeletState, PodRuntimeState } from '../domain.ts'

export interface LockOwner {
  /** Who holds it, for the operator who finds the lock file: actor and service instance. */
  actor: string
  instance: string
}

export interface BackupInfo {
  /** Where the bytes were kept on the node (outside staticPodPath). */
  path: string
}

export type RuntimeReport =
  | { available: true; pods: PodRuntimeState[] }
  | { available: false; reason: string }

export type KubeletReport =
  | { available: true; status: KubeletState }
  | { available: false; reason: string }

export interface NodeAgent {
  readonly nodeName: string
  readonly staticPodPath: string

  /**
   * Every entry of staticPodPath whose name does not start with '.', with the
   * content of each regular file (the kubelet reads exactly these).
   */
  listManifestDir(): Promise<DirEntry[]>
  /** The file's bytes, or null if it does not exist. */
  readManifest(fileName: string): Promise<Buffer | null>
  /**
   * Atomic replace: write a dotfile in staticPodPath, flush it to disk, rename
   * it over fileName. A crash at any point leaves the old or the new file,
   * never half of one, and no file the kubelet would read besides them.
   */
  writeManifest(fileName: string, bytes: Uint8Array): Promise<void>
  /** Removes fileName; no error if it is already gone. */
  deleteManifest(fileName: string): Promise<void>
  /** Keeps a copy of bytes in the node's state directory, outside staticPodPath. */
  backup(fileName: string, bytes: Uint8Array): Promise<BackupInfo>

  /**
   * Runs fn while holding the node-side lock, which also excludes other
   * processes and service instances. Gives up with LOCKED, naming the holder,
   * once nothing ahead of it has moved for the lock wait (LOCK_WAIT_MS),
   * whether that is a writer of this process or another's lock file. A lock
   * whose holder is gone expires.
   */
  withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T>
  /**
   * Runs fn in the node's turn in this process, after the writers ahead of it
   * and before those behind, without the node-side lock: for the reads that
   * record history, which must not take this process's own write in flight
   * for a change made elsewhere (node-lock.ts).
   */
  withTurn<T>(fn: () => Promise<T>): Promise<T>

  /** Pod and container state from the node's container runtime (crictl). */
  runtimeStatus(): Promise<RuntimeReport>
  /** The kubelet's own health endpoint, asked on the node. */
  kubeletHealth(): Promise<KubeletReport>

  close(): Promise<void>
}
