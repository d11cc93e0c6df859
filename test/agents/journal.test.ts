// `journalctl -o json` (src/agents/journal.ts): the argv, and the JSON lines
// as systemd prints them (https://systemd.io/JOURNAL_EXPORT_FORMATS/); last,
// the journalctl stand-in (test/support/fake-journalctl.mjs) read back.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { decodeJournalField, journalctlArgs, parseJournalJson } from '../../src/agents/journal.ts'
import { makeTempDir } from '../helper.ts'

test('the argv: the kubelet unit, JSON, all of each field, a relative --since and --lines=', () => {
  assert.deepEqual(journalctlArgs(600, 201), ['-u', 'kubelet', '-o', 'json', '--no-pager', '--all', '--since=-600s', '--lines=201'])
  assert.deepEqual(journalctlArgs(null, 10), ['-u', 'kubelet', '-o', 'json', '--no-pager', '--all', '--lines=10'])
  assert.throws(() => journalctlArgs(1.5, 10), /not a whole number/)
  assert.throws(() => journalctlArgs(60, -1), /not a whole number/)
})

test('entries: __REALTIME_TIMESTAMP (microseconds, a decimal string) and MESSAGE, oldest first as printed', () => {
  const printed = [
    JSON.stringify({
      __CURSOR: 's=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a26343b29e964691ff25d04c;m=4fc72436e;t=4c508a72423d9;x=d3e5610681098c10',
      __REALTIME_TIMESTAMP: '1718000002123456',
      __MONOTONIC_TIMESTAMP: '21415215982',
      _BOOT_ID: '6c7c6013a26343b29e964691ff25d04c',
      PRIORITY: '6',
      _SYSTEMD_UNIT: 'kubelet.service',
      MESSAGE: 'I0610 06:13:22.123456  812 kubelet.go:2337] "SyncLoop ADD" source="file" pods=["kube-system/kube-apiserver-cp-1"]',
    }),
    '-- No entries --',
    JSON.stringify({ __REALTIME_TIMESTAMP: '1718000003000000', MESSAGE: [69, 48, 54, 49, 48, 32, 0xff, 0xfe, 10, 65] }),
    JSON.stringify({ __REALTIME_TIMESTAMP: '1718000004000000', MESSAGE: ['first value', null, [104, 105]] }),
    JSON.stringify({ __REALTIME_TIMESTAMP: '1718000005000000', MESSAGE: null }),
    JSON.stringify({ MESSAGE: 'no timestamp: not an entry of a journal file' }),
    '{"__REALTIME_TIMESTAMP": "1718000006000000", "MESSAGE": "cut by the output bo',
    '',
  ].join('\n')
  assert.deepEqual(parseJournalJson(printed), [
    { at: '2024-06-10T06:13:22.123Z', message: 'I0610 06:13:22.123456  812 kubelet.go:2337] "SyncLoop ADD" source="file" pods=["kube-system/kube-apiserver-cp-1"]' },
    { at: '2024-06-10T06:13:23.000Z', message: 'E0610 \ufffd\ufffd\nA' },
    { at: '2024-06-10T06:13:24.000Z', message: 'first value\nhi' },
    { at: '2024-06-10T06:13:25.000Z', message: '' },
  ])
  assert.equal(decodeJournalField([0xe2, 0x9c, 0x93]), '✓')
  assert.equal(decodeJournalField(42), null)
})

const fakeJournalctl = fileURLToPath(new URL('../support/fake-journalctl.mjs', import.meta.url))
const run = promisify(execFile)

test('the stand-in: the unit (and systemd about it), --since relative to now, the newest --lines, oldest first; read back here', async (t) => {
  const dir = await makeTempDir('staticpod-journal-')
  t.after(() => rm(dir, { recursive: true, force: true }))
  const ago = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString()
  const entries = join(dir, 'journal.json')
  await writeFile(
    entries,
    JSON.stringify([
      { at: ago(3600), message: 'an hour ago' },
      { at: ago(300), message: 'E0610 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \\"StartContainer\\" for \\"kube-apiserver\\" with CrashLoopBackOff"' },
      { at: ago(200), message: 'containerd, not the kubelet', unit: 'containerd.service' },
      { at: ago(100), message: 'kubelet.service: Main process exited, code=exited, status=1/FAILURE', fromSystemd: true },
      { at: ago(50), message: 'a tab\tand a bell \u0007' },
      { at: ago(10), message: 'x'.repeat(5000) },
    ]),
  )
  const journalctl = async (args: string[]) => (await run(process.execPath, [fakeJournalctl, ...args], { env: { ...process.env, FAKE_JOURNALCTL_ENTRIES: entries } })).stdout
  const lines = parseJournalJson(await journalctl(journalctlArgs(600, 10)))
  assert.deepEqual(lines.map((l) => l.message.slice(0, 40)), [
    'E0610 pod_workers.go:1298] "Error syncin',
    'kubelet.service: Main process exited, co',
    'a tab\tand a bell \u0007',
    'x'.repeat(40),
  ])
  assert.ok(lines.every((l, i) => i === 0 || l.at >= (lines[i - 1] as { at: string }).at), 'oldest first')
  assert.deepEqual(parseJournalJson(await journalctl(journalctlArgs(600, 2))).map((l) => l.message.slice(0, 5)), ['a tab', 'xxxxx'])
  // Without --all, systemd prints null for a field of 4096 bytes or more.
  const withoutAll = (await journalctl(['-u', 'kubelet', '-o', 'json', '-n', '1'])).trim()
  assert.equal(JSON.parse(withoutAll).MESSAGE, null)
  const printed = JSON.parse((await journalctl(['-u', 'kubelet', '-o', 'json', '--lines=2'])).split('\n')[0] as string)
  assert.deepEqual(printed.MESSAGE, [...Buffer.from('a tab\tand a bell \u0007')], 'a control character: byte values')
  assert.deepEqual(Object.keys(printed).slice(0, 4), ['__CURSOR', '__REALTIME_TIMESTAMP', '__MONOTONIC_TIMESTAMP', '_BOOT_ID'])
  assert.equal(printed._SYSTEMD_UNIT, 'kubelet.service')
})
