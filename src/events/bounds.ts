// How long an event's fields may be, and the two cuts every field goes
// through. Names, file names, errors and certificate subjects come from files
// on nodes: an event must stay one short line whatever they hold.

/** The most characters (UTF-16 units) of an event's message. */
export const MAX_MESSAGE = 300
/** node, namespace and name: a valid one (a DNS subdomain) is at most 253, so only a bogus one is ever cut. */
export const MAX_NAME = 253
/** fromHash, toHash: "sha256:" and 64 hex digits is 71. */
export const MAX_HASH = 128
export const MAX_ACTOR = 256

const ELLIPSIS = '…'

// C0 and C1 controls (newlines, tabs, escape sequences) and the Unicode line
// and paragraph separators: each run becomes one space.
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's job
const CONTROL_RUN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g
// Bidirectional overrides, embeddings and isolates, which reorder what a
// reader sees ("Trojan Source"): removed.
const BIDI_CONTROL = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/** One line of plain text: control characters and line breaks as spaces, bidi controls removed, lone surrogates as U+FFFD. */
export function oneLine(text: string): string {
  return text.replace(CONTROL_RUN, ' ').replace(BIDI_CONTROL, '').replace(LONE_SURROGATE, '\ufffd')
}

/** text when at most max UTF-16 units, else its start and an ellipsis, max in all; a surrogate pair is never split. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  let cut = Math.max(0, max - ELLIPSIS.length)
  if (isHighSurrogate(text.charCodeAt(cut - 1))) cut--
  return text.slice(0, cut) + ELLIPSIS
}

/**
 * One line (oneLine) of at most max, cut with an ellipsis: a message, or a
 * name or file name from a node put into one. Very long input is cut before
 * it is cleaned, so the cleaning costs little whatever comes in.
 */
export function bounded(text: string, max: number): string {
  if (text.length <= 4 * max) return clip(oneLine(text), max)
  let head = text.slice(0, 4 * max)
  if (isHighSurrogate(head.charCodeAt(head.length - 1))) head = head.slice(0, -1)
  // Cut already: the ellipsis is there even when cleaning made it short.
  return clip(oneLine(head) + ELLIPSIS, max)
}

/** "sha256:0123abcd…" (the first 8 hex digits), for a message; another form at most 20. */
export function shortHash(hash: string): string {
  const m = /^(sha256:[0-9a-f]{8})[0-9a-f]+$/.exec(hash)
  return m ? `${m[1]}${ELLIPSIS}` : bounded(hash, 20)
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}
