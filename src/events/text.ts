// An event as one line a chat tool shows as it is: the `text` of a Slack or
// Mattermost incoming webhook's body.
//
// Names, file names and messages come from files on nodes, so they are plain
// text here, never markup:
// - &, < and > are written &amp; &lt; &gt;, as Slack's "Formatting text for
//   app surfaces" asks ("Escaping text"): with them escaped, nothing can make
//   a link (<https://...|text>), a mention (<@U123>, <!channel>) or a date;
// - line breaks and other control characters become spaces, bidi controls go
//   (bounds.ts oneLine): one line, read in the order it is written;
// - Mattermost's Markdown and its plain-text mentions get a zero-width space
//   where they would start: "](" (a link [text](url)) and @channel, @here,
//   @all, @everyone (which would notify a whole channel). Slack has no escape
//   for *bold*, _italic_, ~strike~ or `code`; those can only change how a
//   name looks, never what it links to or who is notified.
// The line is at most MAX_TEXT characters, cut with an ellipsis (never in
// the middle of an &amp;).

import type { EventRecord } from '../domain.ts'
import { oneLine, shortHash } from './bounds.ts'

/** The most characters of a line, escapes included. */
export const MAX_TEXT = 600

const ZERO_WIDTH_SPACE = '\u200b'
const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' }

/**
 * `[cp-1] kube-system/kube-apiserver changed on the node (sha256:ab12cd34… → sha256:cd34ef56…)`,
 * `... changed by alice (...)`; for the types that are not about a manifest,
 * `[node] message`, and ` (by actor)` when there is one.
 */
export function eventText(event: Omit<EventRecord, 'id'> | EventRecord): string {
  const pod = event.namespace !== null && event.name !== null ? `${event.namespace}/${event.name}` : null
  const by = event.actor === null ? 'on the node' : `by ${event.actor}`
  const hash = (h: string | null): string | null => (h === null ? null : shortHash(h))
  const from = hash(event.fromHash)
  const to = hash(event.toHash)
  let line: string
  if (pod !== null && event.type === 'STATIC_POD_ADDED') {
    line = `${pod} added ${by}${to ? ` (${to})` : ''}`
  } else if (pod !== null && event.type === 'STATIC_POD_CHANGED') {
    line = `${pod} changed ${by}${from && to && from !== to ? ` (${from} → ${to})` : to ? ` (${to})` : ''}`
  } else if (pod !== null && event.type === 'STATIC_POD_REMOVED') {
    line = `${pod} removed ${by}${from ? ` (was ${from})` : ''}`
  } else {
    line = `${event.message}${event.actor === null ? '' : ` (by ${event.actor})`}`
  }
  return chatLine(`[${event.node}] ${line}`)
}

/** Plain text as one line of at most MAX_TEXT characters for a chat tool (see the head of this file). */
export function chatLine(text: string): string {
  // Enough of it to fill the line whatever the escapes do; the rest would be cut anyway.
  const long = text.length > 2 * MAX_TEXT
  const pieces = Array.from(defuse(oneLine(long ? text.slice(0, 2 * MAX_TEXT) : text)), (char) => ESCAPES[char] ?? char)
  const whole = pieces.join('')
  if (!long && whole.length <= MAX_TEXT) return whole
  let out = ''
  for (const piece of pieces) {
    if (out.length + piece.length > MAX_TEXT - 1) break
    out += piece
  }
  return `${out}…`
}

/** Mattermost's Markdown links and channel-wide mentions, broken by a zero-width space. */
function defuse(text: string): string {
  return text.replace(/\]\(/g, `]${ZERO_WIDTH_SPACE}(`).replace(/@(channel|here|all|everyone)\b/gi, `@${ZERO_WIDTH_SPACE}$1`)
}
