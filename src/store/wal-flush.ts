// The SQLite store's flush, off the event loop. better-sqlite3 is
// synchronous: with synchronous = FULL every commit's fsync of the WAL
// blocks the whole process for as long as the disk takes (about 1 ms here,
// far more on a busy or networked disk), and a rollout to 50 nodes makes
// 15-20 commits, each of them a pause in every SSH session the process
// serves. So the store commits with synchronous = NORMAL (the WAL frames are
// written, not flushed) and asks this for the flush, which runs in libuv's
// thread pool; a write resolves only once its commit is on disk, as before.
// Commits made while a flush runs share the next one (group commit).

import { open } from 'node:fs/promises'

interface Waiter {
  resolve: () => void
  reject: (err: unknown) => void
}

/** Flushes the file at path to disk. */
export type FlushFile = (path: string) => Promise<void>

export class WalFlusher {
  readonly #walPath: string
  readonly #flush: FlushFile
  #inFlight: Promise<void> | null = null
  #waiting: Waiter[] = []

  constructor(walPath: string, flush: FlushFile = fsyncFile) {
    this.#walPath = walPath
    this.#flush = flush
  }

  /**
   * Resolves once everything written to the WAL before this call is on
   * disk: a flush already running may have started before those bytes were
   * written, so a caller that arrives during one waits for the next.
   */
  flushed(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
      if (!this.#inFlight) this.#start()
    })
  }

  /** Settles once no flush runs or waits. */
  async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight
  }

  #start(): void {
    const batch = this.#waiting
    this.#waiting = []
    this.#inFlight = this.#flush(this.#walPath)
      .then(
        () => batch.forEach((waiter) => waiter.resolve()),
        (err: unknown) => batch.forEach((waiter) => waiter.reject(err)),
      )
      .finally(() => {
        this.#inFlight = null
        if (this.#waiting.length > 0) this.#start()
      })
  }
}

/**
 * fsync(2) of the file at path, through a descriptor of its own (fsync
 * flushes the file's data whichever descriptor wrote it). No WAL file: a
 * checkpoint has moved its frames into the database file and truncated or
 * removed it, and a checkpoint flushes the database file before it does.
 */
async function fsyncFile(path: string): Promise<void> {
  let file
  try {
    file = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  try {
    await file.sync()
  } finally {
    await file.close()
  }
}
