// Container logs as the kubelet stores them and as crictl prints them. Pure:
// the agents read the bytes (diagnostics.ts) and hand them here.
//
// The kubelet's file, /var/log/pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log
// (pkg/kubelet/kuberuntime/helpers.go in k8s.io/kubernetes: BuildPodLogsDirectory,
// buildContainerLogsPath), is written by the container runtime in the CRI log
// format, one record per line:
//
//   2016-10-06T00:17:09.669794202Z stdout P log content 1
//   2016-10-06T00:17:09.669794203Z stderr F log content 2
//
// timestamp (RFC 3339 with up to nine fraction digits), stream (stdout |
// stderr), tag (P: partial, the line goes on in the stream's next record; F:
// full, it ends here; more tags may follow after ':'), then the text. This
// is parseCRILog in k8s.io/cri-client pkg/logs/logs.go (formerly
// pkg/kubelet/kuberuntime/logs/logs.go in k8s.io/kubernetes), which both
// `crictl logs` and `kubectl logs` (through the kubelet) use: partial records
// are joined, and with --timestamps each line is printed as
// `<timestamp in RFC3339NanoFixed> <text>`, stdout lines on crictl's stdout
// and stderr lines on its stderr.
//
// Lines are handed out in that printed form: each keeps its timestamp, as the
// API promises. Bounds are applied the same way from both sources: the
// newest tailLines lines (at or after `since`), then, newest first, as many
// whole lines as fit in limitBytes (the kubelet keeps the *first* limitBytes
// of the tail instead; for a diagnosis the last lines are the ones that
// explain a crash). `truncated` says something older was left out for one of
// these bounds.

/** A point in time as the CRI log has it: nanoseconds since the epoch (for order), and crictl's printed form. */
export interface CriTime {
  key: bigint
  /** RFC3339NanoFixed ("2006-01-02T15:04:05.000000000Z07:00", cri-client's timeFormatOut): what crictl --timestamps prints. */
  fixed: string
}

type CriStream = 'stdout' | 'stderr'

export interface CriRecord {
  time: CriTime
  stream: CriStream
  /** Tag P: the line continues in this stream's next record. */
  partial: boolean
  text: string
}

export interface LogBounds {
  /** At most this many lines, the newest; null: no limit but the bytes. */
  tailLines: number | null
  /** Only lines stamped at or after this (nanoseconds since the epoch); null: all. */
  since: bigint | null
  /** At most this many bytes of lines (each counted with its newline). */
  limitBytes: number
}

export interface LogLines {
  /** Oldest first, each `<timestamp> <text>`. */
  lines: string[]
  truncated: boolean
}

/** What a stream of a command's output kept: its last bytes, and whether anything before them was dropped. */
export interface KeptText {
  text: string
  cut: boolean
}

// cri-client parses with RFC3339NanoLenient ("2006-01-02T15:04:05.999999999Z07:00").
const RFC3339_NANO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/

/** A CRI log timestamp, or null when text is not one. */
export function parseCriTime(text: string): CriTime | null {
  const m = RFC3339_NANO.exec(text)
  if (!m) return null
  const [, year, month, day, hour, minute, second, fraction = '', zone] = m as unknown as [string, string, string, string, string, string, string, string | undefined, string]
  const offsetMinutes = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)))
  const ms = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)) - offsetMinutes * 60_000
  if (!Number.isFinite(ms)) return null
  const nanos = fraction.padEnd(9, '0')
  // Go prints a zero offset as Z, however it was written (time.Format with Z07:00).
  const printedZone = offsetMinutes === 0 ? 'Z' : zone
  return { key: BigInt(ms) * 1_000_000n + BigInt(nanos), fixed: `${year}-${month}-${day}T${hour}:${minute}:${second}.${nanos}${printedZone}` }
}

/** One line of the kubelet's log file (without its newline), or null when it is not a CRI record (cri-client skips those too). */
export function parseCriRecord(line: string): CriRecord | null {
  const first = line.indexOf(' ')
  if (first < 0) return null
  const time = parseCriTime(line.slice(0, first))
  if (!time) return null
  const second = line.indexOf(' ', first + 1)
  if (second < 0) return null
  const stream = line.slice(first + 1, second)
  if (stream !== 'stdout' && stream !== 'stderr') return null
  const third = line.indexOf(' ', second + 1)
  if (third < 0) return null
  // Tags are ':'-separated and only the first is defined (runtimeapi.LogTagDelimiter); keep it forward compatible.
  const tag = line.slice(second + 1, third).split(':')[0]
  return { time, stream, partial: tag === 'P', text: line.slice(third + 1) }
}

interface LogicalLine {
  time: CriTime
  text: string
}

/**
 * The log lines in a stretch of the kubelet's log file: the whole file
 * (fromStart), or its last bytes, whose first record may be cut (it is
 * dropped) and whose first line may have begun before them (also dropped).
 * A record still being written at the end (no newline yet) counts, as
 * cri-client prints it too.
 */
export function linesFromCriFile(bytes: Buffer, fromStart: boolean, bounds: LogBounds): LogLines {
  const records = criRecords(bytes, fromStart)
  const lines: LogicalLine[] = []
  // Partial records are joined per stream: a runtime writes stdout and stderr
  // as they come, so a stderr record can sit between a stdout line's pieces.
  const open = new Map<CriStream, LogicalLine | typeof LEFT_OUT>()
  let leftOutInRange = false
  // The first record may be the rest of a line that began before these
  // bytes: unknowable, so that line is left out, up to its stream's next F.
  // (Another stream's first record is taken for the start of a line: a
  // runtime writes a long line's pieces one after the other, so a piece
  // with other records before it in the window is all but impossible.)
  const head = fromStart ? undefined : records[0]
  if (head) open.set(head.stream, LEFT_OUT)
  for (const record of records) {
    const pending = open.get(record.stream)
    if (pending === LEFT_OUT) {
      if (bounds.since === null || record.time.key >= bounds.since) leftOutInRange = true
      if (!record.partial) open.delete(record.stream)
      continue
    }
    let line = pending
    if (line) {
      line.text += record.text
    } else {
      line = { time: record.time, text: record.text }
      lines.push(line)
    }
    if (record.partial) open.set(record.stream, line)
    else open.delete(record.stream)
  }
  // Before these bytes there is more; it matters unless a record here is
  // already older than since (the runtime stamps records in order, so all of
  // that is older still).
  const olderOutOfRange = bounds.since !== null && records.some((r) => r.time.key < (bounds.since as bigint))
  return bounded(lines, bounds, !fromStart && (!olderOutOfRange || leftOutInRange))
}

const LEFT_OUT = Symbol('left out')

/**
 * What a read of the file's last bytes needs to know to stop reading further
 * back: how many complete lines end in them, and the oldest time stamped there.
 */
export function scanCriWindow(bytes: Buffer): { fullRecords: number; oldest: bigint | null } {
  let fullRecords = 0
  let oldest: bigint | null = null
  for (const record of criRecords(bytes, false)) {
    if (!record.partial) fullRecords++
    if (oldest === null || record.time.key < oldest) oldest = record.time.key
  }
  return { fullRecords, oldest }
}

function criRecords(bytes: Buffer, fromStart: boolean): CriRecord[] {
  const records: CriRecord[] = []
  let start = 0
  if (!fromStart) {
    const firstNewline = bytes.indexOf(0x0a)
    if (firstNewline < 0) return records
    start = firstNewline + 1
  }
  while (start < bytes.length) {
    const end = bytes.indexOf(0x0a, start)
    const line = bytes.toString('utf8', start, end < 0 ? bytes.length : end)
    const record = parseCriRecord(line)
    if (record) records.push(record)
    if (end < 0) break
    start = end + 1
  }
  return records
}

/**
 * The lines `crictl logs --timestamps` printed, each stream as far as it was
 * kept (its last bytes), merged into one oldest-first list by their
 * timestamps (crictl prints stdout and stderr apart). Lines without a leading
 * timestamp are crictl's own words (logrus on stderr) or the rest of a line
 * whose start was before --since: left out. When a stream was cut, lines
 * older than its first kept line are left out of the others too, so the
 * result has no hole.
 */
export function linesFromCrictlLogs(stdout: KeptText, stderr: KeptText, bounds: Omit<LogBounds, 'since'>): LogLines {
  const streams = [stdout, stderr].map((kept) => {
    const rows = kept.text.split('\n')
    if (kept.cut) rows.shift()
    const lines: LogicalLine[] = []
    for (const row of rows) {
      const space = row.indexOf(' ')
      const time = space > 0 ? parseCriTime(row.slice(0, space)) : null
      if (time) lines.push({ time, text: row.slice(space + 1) })
    }
    return { lines, cut: kept.cut }
  })
  let cutoff: bigint | null = null
  for (const stream of streams) {
    const first = stream.lines[0]
    if (stream.cut && first && (cutoff === null || first.time.key > cutoff)) cutoff = first.time.key
  }
  const merged = streams
    // Equal timestamps keep each stream's order, stdout first.
    .flatMap((stream, s) => stream.lines.map((line, i) => ({ ...line, order: s * 1e9 + i })))
    .filter((line) => cutoff === null || line.time.key >= cutoff)
    .sort((a, b) => (a.time.key < b.time.key ? -1 : a.time.key > b.time.key ? 1 : a.order - b.order))
  return bounded(merged, { ...bounds, since: null }, streams.some((s) => s.cut))
}

/** tailLines, since and limitBytes, applied to lines oldest first. */
function bounded(lines: LogicalLine[], bounds: LogBounds, truncatedBefore: boolean): LogLines {
  let truncated = truncatedBefore
  let kept = bounds.since === null ? lines : lines.filter((line) => line.time.key >= (bounds.since as bigint))
  if (bounds.tailLines !== null && kept.length > bounds.tailLines) {
    kept = kept.slice(kept.length - bounds.tailLines)
    truncated = true
  }
  const printed = kept.map((line) => `${line.time.fixed} ${line.text}`)
  let bytes = 0
  let from = printed.length
  while (from > 0) {
    const size = Buffer.byteLength(printed[from - 1] as string) + 1
    if (bytes + size > bounds.limitBytes) break
    bytes += size
    from--
  }
  if (from === 0) return { lines: printed, truncated }
  if (from === printed.length) {
    // Not even the newest line fits: its beginning, as the kubelet cuts a line at limitBytes.
    return { lines: bounds.limitBytes > 1 ? [cutUtf8(printed[printed.length - 1] as string, bounds.limitBytes - 1)] : [], truncated: true }
  }
  return { lines: printed.slice(from), truncated: true }
}

/** The longest prefix of text that is at most maxBytes of UTF-8 and ends on a character boundary. */
function cutUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= maxBytes) return text
  let end = maxBytes
  // Back up over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return bytes.toString('utf8', 0, end)
}
