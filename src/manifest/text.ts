// Text helpers shared by the parser and the file-name rules.

// A high surrogate not followed by a low one, or a low one not preceded by a
// high one. Same answer as String.prototype.isWellFormed (Node 20 has it, but
// the ES2023 lib this project compiles against does not declare it).
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** True when the string has no UTF-8 encoding (it would be written with U+FFFD instead). */
export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s)
}

/** Decodes UTF-8 strictly; null when the bytes are not valid UTF-8. Keeps a BOM as U+FEFF. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
  } catch {
    return null
  }
}
