#!/usr/bin/env node
// A stand-in for journalctl, because the test machine's journal has no
// kubelet in it. It answers `journalctl -o json` the way systemd prints it
// (https://systemd.io/JOURNAL_EXPORT_FORMATS/, "Journal JSON Format";
// src/shared/logs-show.c output_json): one JSON object per line, oldest
// first, the address fields first (__CURSOR, __REALTIME_TIMESTAMP and
// __MONOTONIC_TIMESTAMP: microseconds as decimal strings, _BOOT_ID), then the
// entry's fields as stored; a value that is not printable UTF-8 (tab and
// newline are) as an array of its byte values; without -a/--all, a field of
// 4096 bytes or more as null (JSON_THRESHOLD).
//
// Options honoured: -u/--unit UNIT (".service" added when there is no
// suffix; matches _SYSTEMD_UNIT, and systemd's own lines about the unit:
// UNIT, OBJECT_SYSTEMD_UNIT), -o/--output json, -S/--since (relative
// "-600s", "-10min", "-2h", "-1d"; "now", "today", "yesterday"; or an
// absolute "2024-06-10 06:13:22" / ISO 8601 time), -n N / --lines=N (the
// newest N), -r/--reverse, -a/--all, --no-pager, -q/--quiet.
//
// The entries come from the file named by FAKE_JOURNALCTL_ENTRIES: a JSON
// array of entries, or { "entries": [...], "exitCode"?: n, "stderr"?: text,
// "notSeeingSystem"?: true } (the last: what journalctl does for a user
// outside the journal's groups: the hint on stderr and no system entries).
// An entry is journal fields ({"__REALTIME_TIMESTAMP": "...", "MESSAGE": ...,
// "_SYSTEMD_UNIT": "kubelet.service", ...}) or the short form {"at": ISO
// time, "message": text or byte array, "unit"?: "kubelet.service",
// "priority"?: 0..7}; fields a real kubelet entry has are filled in. A
// missing file is an empty journal. Each argv is appended, one JSON line
// each, to FAKE_JOURNALCTL_LOG if set.
import { appendFileSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'

const args = process.argv.slice(2)
if (process.env.FAKE_JOURNALCTL_LOG) appendFileSync(process.env.FAKE_JOURNALCTL_LOG, `${JSON.stringify(args)}\n`)

function fail(message, code = 1) {
  process.stderr.write(`${message}\n`)
  process.exit(code)
}

let document = []
try {
  document = JSON.parse(readFileSync(process.env.FAKE_JOURNALCTL_ENTRIES ?? '', 'utf8'))
} catch (err) {
  if (err.code !== 'ENOENT' && process.env.FAKE_JOURNALCTL_ENTRIES) fail(`fake journalctl: ${err.message}`)
}
const journal = Array.isArray(document) ? { entries: document } : document

// ---- options ---------------------------------------------------------------------

const options = { units: [], output: 'short', since: null, lines: null, reverse: false, all: false }
for (let i = 0; i < args.length; i++) {
  let arg = args[i]
  let value
  const eq = arg.indexOf('=')
  if (arg.startsWith('--') && eq > 0) {
    value = arg.slice(eq + 1)
    arg = arg.slice(0, eq)
  } else if (/^-[unoS]./.test(arg)) {
    value = arg.slice(2)
    arg = arg.slice(0, 2)
  }
  const next = () => value ?? args[++i]
  if (arg === '-u' || arg === '--unit') options.units.push(unitName(next()))
  else if (arg === '-o' || arg === '--output') options.output = next()
  else if (arg === '-S' || arg === '--since') options.since = parseSince(next())
  else if (arg === '-n' || arg === '--lines') {
    // -n takes its argument optionally: the next word only when it is a number (journalctl.c parse_lines).
    const given = value ?? (/^\+?\d+$/.test(args[i + 1] ?? '') ? args[++i] : '10')
    options.lines = given === 'all' ? null : Number(given.replace(/^\+/, ''))
  } else if (arg === '-r' || arg === '--reverse') options.reverse = true
  else if (arg === '-a' || arg === '--all') options.all = true
  else if (arg === '--no-pager' || arg === '-q' || arg === '--quiet') continue
  else fail(`journalctl: unrecognized option '${args[i]}'`)
}
if (options.output !== 'json') fail(`fake journalctl: only -o json is supported, got ${options.output}`)

function unitName(name) {
  return /\.[a-z]+$/.test(name) ? name : `${name}.service`
}

/** systemd.time(7): a relative time span back from now, a day word, or an absolute time; microseconds since the epoch. */
function parseSince(text) {
  const nowUs = BigInt(Date.now()) * 1000n
  const units = { us: 1, usec: 1, ms: 1e3, msec: 1e3, s: 1e6, sec: 1e6, second: 1e6, seconds: 1e6, m: 60e6, min: 60e6, minute: 60e6, minutes: 60e6, h: 3600e6, hr: 3600e6, hour: 3600e6, hours: 3600e6, d: 86400e6, day: 86400e6, days: 86400e6 }
  const relative = /^([+-])\s*((?:\d+\s*[a-z]*\s*)+)$/.exec(text)
  if (relative) {
    let us = 0
    for (const [, n, unit] of relative[2].matchAll(/(\d+)\s*([a-z]*)/g)) {
      const factor = units[unit || 's']
      if (factor === undefined) fail(`Failed to parse timestamp: ${text}`)
      us += Number(n) * factor
    }
    return relative[1] === '-' ? nowUs - BigInt(us) : nowUs + BigInt(us)
  }
  if (text === 'now') return nowUs
  if (text === 'today' || text === 'yesterday') {
    const day = new Date()
    day.setHours(0, 0, 0, 0)
    return BigInt(day.getTime() - (text === 'yesterday' ? 86_400_000 : 0)) * 1000n
  }
  const ms = Date.parse(text.includes('T') ? text : text.replace(' ', 'T'))
  if (Number.isNaN(ms)) fail(`Failed to parse timestamp: ${text}`)
  return BigInt(ms) * 1000n
}

// ---- entries ---------------------------------------------------------------------

const BOOT_ID = 'b1d3c0a8e5f94a7c9d2e6f1a0b3c4d5e'
const MACHINE_ID = '4f7b2c9d1e8a4b6c8d0e2f4a6b8c0d2e'
const host = process.env.FAKE_JOURNALCTL_HOSTNAME ?? hostname()

function fullEntry(entry, index) {
  if (entry.__REALTIME_TIMESTAMP !== undefined) return entry
  const realtime = BigInt(Date.parse(entry.at)) * 1000n
  const unit = entry.unit ?? 'kubelet.service'
  const fromSystemd = entry.fromSystemd === true
  return {
    __REALTIME_TIMESTAMP: String(realtime),
    __MONOTONIC_TIMESTAMP: String(5_000_000_000n + BigInt(index) * 1000n),
    _TRANSPORT: fromSystemd ? 'journal' : 'stdout',
    PRIORITY: String(entry.priority ?? 6),
    SYSLOG_FACILITY: '3',
    SYSLOG_IDENTIFIER: fromSystemd ? 'systemd' : 'kubelet',
    _PID: fromSystemd ? '1' : '812',
    _UID: '0',
    _GID: '0',
    _COMM: fromSystemd ? 'systemd' : 'kubelet',
    _EXE: fromSystemd ? '/usr/lib/systemd/systemd' : '/usr/bin/kubelet',
    _CMDLINE: fromSystemd ? '/sbin/init' : '/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml',
    _CAP_EFFECTIVE: '1ffffffffff',
    _SYSTEMD_CGROUP: fromSystemd ? '/init.scope' : `/system.slice/${unit}`,
    _SYSTEMD_UNIT: fromSystemd ? 'init.scope' : unit,
    ...(fromSystemd ? { UNIT: unit } : {}),
    _SYSTEMD_SLICE: fromSystemd ? '-.slice' : 'system.slice',
    _SYSTEMD_INVOCATION_ID: '6a1f0c3e9b2d4e7f8a5b1c2d3e4f5a6b',
    _BOOT_ID: BOOT_ID,
    _MACHINE_ID: MACHINE_ID,
    _HOSTNAME: host,
    MESSAGE: entry.message,
    ...(fromSystemd ? {} : { _STREAM_ID: '0d6c1f0e2b3a4c5d6e7f8091a2b3c4d5' }),
  }
}

/** A field's value as output_json prints it: printable UTF-8 as a string, anything else as bytes; large ones null without --all. */
function jsonValue(value) {
  if (Array.isArray(value)) return value.every((v) => typeof v === 'number') && !options.all && value.length >= 4096 ? null : value
  if (value === null || value === undefined) return null
  const text = String(value)
  const bytes = Buffer.from(text, 'utf8')
  if (!options.all && bytes.length >= 4096) return null
  // utf8_is_printable: no control characters but tab and newline.
  const control = [...text].some((ch) => {
    const code = ch.codePointAt(0)
    return (code < 0x20 && code !== 0x09 && code !== 0x0a) || code === 0x7f
  })
  return control ? [...bytes] : text
}

const entries = (journal.entries ?? []).map(fullEntry).sort((a, b) => (BigInt(a.__REALTIME_TIMESTAMP) < BigInt(b.__REALTIME_TIMESTAMP) ? -1 : 1))
if (journal.notSeeingSystem) {
  process.stderr.write(
    "Hint: You are currently not seeing messages from other users and the system.\n      Users in groups 'adm', 'systemd-journal', 'wheel' can see all messages.\n      Pass -q to turn off this notice.\n",
  )
} else {
  let shown = entries.filter(
    (e) =>
      (options.units.length === 0 || options.units.some((u) => e._SYSTEMD_UNIT === u || e.UNIT === u || e.OBJECT_SYSTEMD_UNIT === u)) &&
      (options.since === null || BigInt(e.__REALTIME_TIMESTAMP) >= options.since),
  )
  if (options.lines !== null) shown = options.lines === 0 ? [] : shown.slice(-options.lines)
  if (options.reverse) shown.reverse()
  for (const entry of shown) {
    const seqnum = entries.indexOf(entry) + 1
    const realtime = entry.__REALTIME_TIMESTAMP
    const printed = {
      __CURSOR: `s=0f1e2d3c4b5a69788796a5b4c3d2e1f0;i=${seqnum.toString(16)};b=${BOOT_ID};m=${Number(entry.__MONOTONIC_TIMESTAMP ?? 0).toString(16)};t=${BigInt(realtime).toString(16)};x=${seqnum.toString(16).padStart(16, '0')}`,
      __REALTIME_TIMESTAMP: realtime,
      __MONOTONIC_TIMESTAMP: entry.__MONOTONIC_TIMESTAMP ?? '0',
      _BOOT_ID: entry._BOOT_ID ?? BOOT_ID,
    }
    for (const [field, value] of Object.entries(entry)) if (!(field in printed)) printed[field] = jsonValue(value)
    process.stdout.write(`${JSON.stringify(printed)}\n`)
  }
}
if (journal.exitCode) {
  process.stderr.write(journal.stderr ?? 'Failed to open journal.\n')
  process.exit(journal.exitCode)
}
