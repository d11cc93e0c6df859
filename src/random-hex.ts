// Random hex for names and ids that must not collide (temp files, lock
// tokens, audit ids): not secrets, but from the CSPRNG all the same.
//
// randomBytes(n) runs a job through OpenSSL on every call, ≈ 10–15 µs; a
// write to a node takes four of these and a 50-node rollout two hundred.
// Drawn from a pool filled 4 KiB at a time instead, as crypto.randomUUID
// does with its own cache: the bytes are the same CSPRNG's, each used once.

import { randomBytes } from 'node:crypto'

const POOL_BYTES = 4096
let pool = Buffer.alloc(0)
let offset = 0

/** `bytes` random bytes as 2 × bytes hex digits. */
export function randomHex(bytes: number): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > POOL_BYTES) throw new RangeError(`randomHex: 1 to ${POOL_BYTES} bytes, got ${bytes}`)
  if (offset + bytes > pool.length) {
    pool = randomBytes(POOL_BYTES)
    offset = 0
  }
  const hex = pool.toString('hex', offset, offset + bytes)
  offset += bytes
  return hex
}
