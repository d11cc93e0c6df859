import { createHash } from 'node:crypto'

/** Lowercase hex SHA-256 of the exact bytes; a string is hashed as its UTF-8 encoding. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).digest('hex')
}
