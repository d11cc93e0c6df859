// The last bytes of a command's output stream, for commands whose newest
// output is what matters (crictl logs, journalctl): a log can be larger than
// anything worth holding, and its end is what explains a crash. Memory stays
// under keepBytes plus one chunk; whether anything was dropped is kept too.

import type { KeptText } from './cri-log.ts'

export class OutputTail {
  readonly #keepBytes: number
  #chunks: Buffer[] = []
  #size = 0
  #dropped = false

  constructor(keepBytes: number) {
    if (!Number.isSafeInteger(keepBytes) || keepBytes < 0) throw new Error(`keepBytes must be a whole number, got ${keepBytes}`)
    this.#keepBytes = keepBytes
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#size += chunk.length
    // Drop whole chunks from the front while what remains still holds keepBytes.
    while (this.#chunks.length > 1 && this.#size - (this.#chunks[0] as Buffer).length >= this.#keepBytes) {
      this.#size -= (this.#chunks.shift() as Buffer).length
      this.#dropped = true
    }
  }

  /** The kept bytes as text, and whether output before them was dropped. */
  kept(): KeptText {
    let bytes = Buffer.concat(this.#chunks, this.#size)
    let cut = this.#dropped
    if (bytes.length > this.#keepBytes) {
      bytes = bytes.subarray(bytes.length - this.#keepBytes)
      cut = true
    }
    return { text: bytes.toString('utf8'), cut }
  }
}
