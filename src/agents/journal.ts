// The kubelet's journal, as `journalctl -o json` prints it. Pure: the agents
// run journalctl (diagnostics.ts) and hand its output here.
//
// The command line is fixed but for two integers:
//   journalctl -u kubelet -o json --no-pager --all --since=-<N>s --lines=<M>
// - -u kubelet: the kubelet's unit (journalctl adds .service; it matches the
//   unit's own lines and systemd's about it, "kubelet.service: Main process
//   exited ...").
// - --since=-<N>s: journalctl(1): "relative times may be specified, prefixed
//   with '-' or '+', referring to times before or after the current time",
//   in systemd.time(7)'s time span syntax ("600s"). Relative to the node's own
//   clock, as the kubelet's sinceSeconds is, so a node whose clock is off is
//   still asked for its last N seconds.
// - --lines=<M>: the newest M entries, printed oldest first. The `--lines=`
//   form, not `-n M`: -n takes its argument optionally, and old journalctl
//   only looks at the next word when it parses as a number.
// - --all: without it journalctl prints null for any field of 4096 bytes or
//   more (JSON_THRESHOLD in systemd's src/shared/logs-show.c).
// - --no-pager: no terminal anyway, but a PAGER in the node's environment must not matter.
//
// The JSON format (https://systemd.io/JOURNAL_EXPORT_FORMATS/, "Journal JSON
// Format"): one object per line; __REALTIME_TIMESTAMP is the entry's wall
// clock time in microseconds since the epoch, as a decimal string; a field is
// a string, or, when it is not printable UTF-8, an array of its byte values
// (0..255); a field with several values is an array of those; a field too
// large to show is null.

/** One line of the journal. */
export interface JournalLine {
  /** ISO 8601 (milliseconds; the journal keeps microseconds). */
  at: string
  message: string
}

const UNIT = 'kubelet'

/** The argv (after `journalctl`), for integers checked by the caller. */
export function journalctlArgs(sinceSeconds: number | null, lines: number): string[] {
  for (const [what, value] of [['sinceSeconds', sinceSeconds ?? 1], ['lines', lines]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`unreachable: ${what} ${value} is not a whole number`)
  }
  return ['-u', UNIT, '-o', 'json', '--no-pager', '--all', ...(sinceSeconds === null ? [] : [`--since=-${sinceSeconds}s`]), `--lines=${lines}`]
}

/**
 * The entries journalctl printed, in its order (oldest first). Lines that are
 * not a JSON object with a timestamp are skipped: "-- No entries --" (older
 * journalctl prints it in every output mode), or a line cut by the output bound.
 */
export function parseJournalJson(text: string): JournalLine[] {
  const lines: JournalLine[] = []
  for (const row of text.split('\n')) {
    if (!row.startsWith('{')) continue
    let entry: unknown
    try {
      entry = JSON.parse(row)
    } catch {
      continue
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue
    const fields = entry as Record<string, unknown>
    const at = realtime(fields.__REALTIME_TIMESTAMP)
    if (at === null) continue
    lines.push({ at, message: decodeJournalField(fields.MESSAGE) ?? '' })
  }
  return lines
}

/** A field's value as text: a string as it is; byte values decoded as UTF-8 (invalid sequences become U+FFFD); several values one per line; null when it carries none. */
export function decodeJournalField(value: unknown): string | null {
  if (typeof value === 'string') return value
  if (value === null || value === undefined) return null
  if (!Array.isArray(value)) return null
  if (value.every((v) => typeof v === 'number')) {
    return Buffer.from(value.map((v) => (Number.isInteger(v) && v >= 0 && v <= 255 ? v : 0x3f))).toString('utf8')
  }
  // A field with several values: each is a string, null or a byte array.
  const values = value.map((v) => decodeJournalField(v)).filter((v): v is string => v !== null)
  return values.length > 0 ? values.join('\n') : null
}

function realtime(value: unknown): string | null {
  if (typeof value !== 'string' || !/^\d{1,20}$/.test(value)) return null
  const ms = Number(BigInt(value) / 1000n)
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}
