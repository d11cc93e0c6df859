// Text values larger than a DynamoDB item may hold (400 KB, names and key
// included). A kubelet accepts manifests up to 10 MB, and an observation holds
// the text of every manifest on its node, so both can be far larger than one
// item. Such a value is written as numbered chunk items in its owner's
// partition, under a fresh blob id, before the item that refers to it; a
// reader gets the whole value or an error, never a truncated one.
//
// The blob id is new for every write, so two writers racing for the same
// revision number never overwrite each other's chunks: the loser's chunks are
// orphans, which it deletes (and which deleteNode removes with the rest of the
// partition if the loser dies first).

import { createHash, randomUUID } from 'node:crypto'
import type { DynamoIo, Item, ItemKey } from './dynamodb-io.ts'
import { keys } from './dynamodb-table.ts'

/**
 * Values up to this many UTF-8 bytes stay inside their item. The rest of an
 * item (keys, hash, file name, actor...) is small, but not bounded by us, so
 * the margin to 400 KB is wide.
 */
export const INLINE_MAX_BYTES = 256 * 1024
/** Bytes per chunk item: 350 KiB leaves ~50 KiB for keys and attribute names. */
export const CHUNK_BYTES = 350 * 1024

/** Where a chunked value's pieces are, and what they must add up to. */
export interface BlobRef {
  id: string
  chunks: number
  bytes: number
  sha256: string
}

/** A value as stored in its owner's item: inline text, or a reference to chunks. */
export type StoredText = { inline: string } | { blob: BlobRef; chunkItems: Item[] }

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

/** Splits `text` when it is too large to stay inline; the chunk items must be written before the owner. */
export function storeText(partition: string, text: string): StoredText {
  if (utf8Length(text) <= INLINE_MAX_BYTES) return { inline: text }
  const bytes = Buffer.from(text, 'utf8')
  const id = randomUUID()
  const chunkItems: Item[] = []
  for (let offset = 0, index = 0; offset < bytes.length; offset += CHUNK_BYTES, index++) {
    // Cut at byte offsets: a multi-byte character split in two is joined again on read.
    chunkItems.push({ ...keys.chunk(partition, id, index), data: bytes.subarray(offset, offset + CHUNK_BYTES) })
  }
  const blob: BlobRef = { id, chunks: chunkItems.length, bytes: bytes.length, sha256: sha256(bytes) }
  return { blob, chunkItems }
}

function chunkKeys(partition: string, blob: BlobRef): ItemKey[] {
  return Array.from({ length: blob.chunks }, (_, i) => keys.chunk(partition, blob.id, i))
}

/** The chunk data of many blobs at once, joined into their texts; null for a blob with a chunk missing. */
export async function readBlobs(io: DynamoIo, blobs: Array<{ partition: string; blob: BlobRef }>): Promise<Array<string | null>> {
  if (blobs.length === 0) return []
  const found = await io.batchGet(blobs.flatMap(({ partition, blob }) => chunkKeys(partition, blob)))
  return blobs.map(({ partition, blob }) => {
    const parts: Uint8Array[] = []
    for (const key of chunkKeys(partition, blob)) {
      const data = found.get(`${key.pk} ${key.sk}`)?.data
      if (!(data instanceof Uint8Array)) return null
      parts.push(data)
    }
    const bytes = Buffer.concat(parts)
    if (bytes.length !== blob.bytes || sha256(bytes) !== blob.sha256) {
      throw new Error(`stored value ${blob.id} is corrupt: expected ${blob.bytes} bytes with sha256 ${blob.sha256}`)
    }
    return bytes.toString('utf8')
  })
}

export async function deleteBlob(io: DynamoIo, partition: string, blob: BlobRef): Promise<void> {
  await io.batchWrite(chunkKeys(partition, blob).map((key) => ({ delete: key })))
}

export function isBlobRef(value: unknown): value is BlobRef {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return typeof v.id === 'string' && typeof v.chunks === 'number' && typeof v.bytes === 'number' && typeof v.sha256 === 'string'
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
