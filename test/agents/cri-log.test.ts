// The CRI log format (src/agents/cri-log.ts): the kubelet's files as the
// runtime writes them, and crictl logs' output, read to the same lines. The
// last tests run the crictl stand-in (test/support/fake-crictl.mjs, shaped
// after k8s.io/cri-client's ReadLogs) on a log and check that both ways of
// reading it agree.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { linesFromCriFile, linesFromCrictlLogs, parseCriRecord, parseCriTime, scanCriWindow } from '../../src/agents/cri-log.ts'
import { makeTempDir } from '../helper.ts'
import { container, criLogRecord, sandbox } from '../support/crictl-fixture.ts'

const ALL = { tailLines: null, since: null, limitBytes: 1 << 20 }
const file = (records: string[]): Buffer => Buffer.from(records.map((r) => `${r}\n`).join(''))
const ns = (iso: string): bigint => BigInt(Date.parse(iso)) * 1_000_000n

test('timestamps: RFC 3339 with up to nine fraction digits, any offset; printed as crictl prints them (RFC3339NanoFixed, zero offset as Z)', () => {
  assert.deepEqual(parseCriTime('2016-10-06T00:17:09.669794202Z'), { key: ns('2016-10-06T00:17:09.669Z') + 794_202n, fixed: '2016-10-06T00:17:09.669794202Z' })
  assert.equal(parseCriTime('2016-10-06T00:17:09.5Z')?.fixed, '2016-10-06T00:17:09.500000000Z')
  assert.equal(parseCriTime('2016-10-06T00:17:09Z')?.fixed, '2016-10-06T00:17:09.000000000Z')
  const berlin = parseCriTime('2016-10-06T02:17:09.669794202+02:00')
  assert.equal(berlin?.fixed, '2016-10-06T02:17:09.669794202+02:00')
  assert.equal(berlin?.key, parseCriTime('2016-10-06T00:17:09.669794202Z')?.key, 'the same instant')
  assert.equal(parseCriTime('2016-10-06T00:17:09.1+00:00')?.fixed, '2016-10-06T00:17:09.100000000Z')
  for (const bad of ['2016-10-06 00:17:09Z', '2016-10-06T00:17:09.1234567891Z', '2016-10-06T00:17:09', 'stdout']) assert.equal(parseCriTime(bad), null, bad)
})

test('records: timestamp, stream, tag (P or F, forward-compatible :-suffixes), text with its spaces', () => {
  assert.deepEqual(parseCriRecord('2016-10-06T00:17:09.669794202Z stdout P log content 1'), {
    time: parseCriTime('2016-10-06T00:17:09.669794202Z'),
    stream: 'stdout',
    partial: true,
    text: 'log content 1',
  })
  assert.equal(parseCriRecord('2016-10-06T00:17:09.669794203Z stderr F:x log  2 ')?.text, 'log  2 ')
  assert.equal(parseCriRecord('2016-10-06T00:17:09.669794203Z stderr F:x log')?.partial, false)
  assert.equal(parseCriRecord('2016-10-06T00:17:09.669794203Z stderr F ')?.text, '')
  for (const bad of ['2016-10-06T00:17:09Z stdin F x', '2016-10-06T00:17:09Z stdout F', 'not a record', '{"log":"docker json","stream":"stdout"}']) {
    assert.equal(parseCriRecord(bad), null, bad)
  }
})

test('a whole file: partial records joined per stream, lines oldest first with their first timestamp', () => {
  const bytes = file([
    criLogRecord('2024-06-10T06:13:22.000000001Z', 'stdout', 'I0610 starting', 'P'),
    criLogRecord('2024-06-10T06:13:22.000000002Z', 'stderr', 'E0610 a stderr line between the pieces'),
    criLogRecord('2024-06-10T06:13:22.000000003Z', 'stdout', ' the server', 'P'),
    criLogRecord('2024-06-10T06:13:22.000000004Z', 'stdout', ' on :6443'),
    'garbage the runtime did not write',
    criLogRecord('2024-06-10T06:13:23.5Z', 'stderr', 'E0610 run.go:74 "command failed" err="open /etc/kubernetes/pki/apiserver.crt: no such file or directory"'),
  ])
  assert.deepEqual(linesFromCriFile(bytes, true, ALL), {
    lines: [
      '2024-06-10T06:13:22.000000001Z I0610 starting the server on :6443',
      '2024-06-10T06:13:22.000000002Z E0610 a stderr line between the pieces',
      '2024-06-10T06:13:23.500000000Z E0610 run.go:74 "command failed" err="open /etc/kubernetes/pki/apiserver.crt: no such file or directory"',
    ],
    truncated: false,
  })
  // A record being written (no newline yet) counts, as cri-client prints it.
  const unfinished = Buffer.concat([file([criLogRecord('2024-06-10T06:13:22Z', 'stdout', 'one')]), Buffer.from('2024-06-10T06:13:23Z stdout F two')])
  assert.deepEqual(linesFromCriFile(unfinished, true, ALL).lines, ['2024-06-10T06:13:22.000000000Z one', '2024-06-10T06:13:23.000000000Z two'])
  assert.deepEqual(linesFromCriFile(Buffer.alloc(0), true, ALL), { lines: [], truncated: false })
})

test('the end of a file: its first, cut record and a line that may have begun before are left out, and truncated says so', () => {
  const records = [
    criLogRecord('2024-06-10T06:13:20Z', 'stdout', 'zero'),
    criLogRecord('2024-06-10T06:13:21Z', 'stdout', 'one, first piece', 'P'),
    criLogRecord('2024-06-10T06:13:21.1Z', 'stdout', ', second piece'),
    criLogRecord('2024-06-10T06:13:22Z', 'stderr', 'two'),
    criLogRecord('2024-06-10T06:13:23Z', 'stdout', 'three'),
  ]
  const whole = file(records)
  // From the middle of "one"'s first record: the rest of it, and its second piece, are not a line.
  const window = whole.subarray(whole.indexOf('first piece'))
  assert.deepEqual(linesFromCriFile(window, false, ALL), { lines: ['2024-06-10T06:13:22.000000000Z two', '2024-06-10T06:13:23.000000000Z three'], truncated: true })
  // From a record boundary: whether the first record continues a line before it is unknowable, so its line is left out.
  const fromZero = Buffer.concat([Buffer.from('cut\n'), whole])
  assert.deepEqual(linesFromCriFile(fromZero, false, ALL), {
    lines: ['2024-06-10T06:13:21.000000000Z one, first piece, second piece', '2024-06-10T06:13:22.000000000Z two', '2024-06-10T06:13:23.000000000Z three'],
    truncated: true,
  })
  // But when a line there is already older than since, nothing before the window could be wanted.
  const since = ns('2024-06-10T06:13:22.5Z')
  assert.deepEqual(linesFromCriFile(window, false, { ...ALL, since }), { lines: ['2024-06-10T06:13:23.000000000Z three'], truncated: false })
  const scan = scanCriWindow(window)
  assert.equal(scan.fullRecords, 3, "the second piece of one, two, three (the cut first record doesn't count)")
  assert.equal(scan.oldest, ns('2024-06-10T06:13:21.1Z'))
})

test('bounds: since, then the newest tailLines, then the newest lines that fit in limitBytes (whole lines; a single longer line cut at a character)', () => {
  const bytes = file(Array.from({ length: 10 }, (_, i) => criLogRecord(`2024-06-10T06:13:2${i}Z`, i % 2 ? 'stderr' : 'stdout', `line ${i}`)))
  const printed = (i: number) => `2024-06-10T06:13:2${i}.000000000Z line ${i}`
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, tailLines: 3 }), { lines: [7, 8, 9].map(printed), truncated: true })
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, tailLines: 10 }), { lines: [...Array(10).keys()].map(printed), truncated: false })
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, tailLines: 0 }), { lines: [], truncated: true })
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, since: ns('2024-06-10T06:13:28Z') }), { lines: [8, 9].map(printed), truncated: false })
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, since: ns('2024-06-10T06:13:25Z'), tailLines: 2 }), { lines: [8, 9].map(printed), truncated: true })
  // Each line is 37 bytes and its newline: two fit in 76, not in 75.
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, limitBytes: 76 }), { lines: [8, 9].map(printed), truncated: true })
  assert.deepEqual(linesFromCriFile(bytes, true, { ...ALL, limitBytes: 75 }), { lines: [9].map(printed), truncated: true })
  const wide = file([criLogRecord('2024-06-10T06:13:20Z', 'stdout', 'äöü'.repeat(10))])
  const cut = linesFromCriFile(wide, true, { ...ALL, limitBytes: 36 })
  assert.deepEqual(cut, { lines: ['2024-06-10T06:13:20.000000000Z äö'], truncated: true }, '31 bytes of timestamp and space, then whole characters only')
})

test("crictl's output: stdout and stderr merged by timestamp, crictl's own words left out, a cut stream leaves no hole", () => {
  const stdout = { text: '2024-06-10T06:13:20.000000000Z out 0\n2024-06-10T06:13:22.000000000Z out 2\n', cut: false }
  const stderr = {
    text: 'time="2024-06-10T07:00:00Z" level=warning msg="Config \\"/etc/crictl.yaml\\" does not exist"\n2024-06-10T06:13:21.000000000Z err 1\n2024-06-10T06:13:23.000000000Z err 3\n',
    cut: false,
  }
  assert.deepEqual(linesFromCrictlLogs(stdout, stderr, { tailLines: null, limitBytes: 1 << 20 }), {
    lines: ['2024-06-10T06:13:20.000000000Z out 0', '2024-06-10T06:13:21.000000000Z err 1', '2024-06-10T06:13:22.000000000Z out 2', '2024-06-10T06:13:23.000000000Z err 3'],
    truncated: false,
  })
  assert.deepEqual(linesFromCrictlLogs(stdout, stderr, { tailLines: 2, limitBytes: 1 << 20 }).lines, ['2024-06-10T06:13:22.000000000Z out 2', '2024-06-10T06:13:23.000000000Z err 3'])
  // stdout kept from the middle of a line: its rest is dropped, and stderr's lines older than its first whole one too.
  const cutStdout = { text: '0.000000000Z out 0\n2024-06-10T06:13:22.000000000Z out 2\n', cut: true }
  assert.deepEqual(linesFromCrictlLogs(cutStdout, stderr, { tailLines: null, limitBytes: 1 << 20 }), {
    lines: ['2024-06-10T06:13:22.000000000Z out 2', '2024-06-10T06:13:23.000000000Z err 3'],
    truncated: true,
  })
})

// ---- the stand-in and the file agree ----------------------------------------------

const fakeCrictl = fileURLToPath(new URL('../support/fake-crictl.mjs', import.meta.url))
const run = promisify(execFile)

test('crictl logs (the stand-in, as cri-client reads a file) and the kubelet file read here give the same lines', async (t) => {
  const dir = await makeTempDir('staticpod-cri-log-')
  t.after(() => rm(dir, { recursive: true, force: true }))
  const records = [
    criLogRecord('2024-06-10T06:13:20.000000001Z', 'stdout', 'I0610 Flag --insecure-port has been deprecated'),
    criLogRecord('2024-06-10T06:13:20.100000000Z', 'stderr', 'W0610 a long line, first piece;', 'P'),
    criLogRecord('2024-06-10T06:13:20.100000001Z', 'stderr', ' the second;', 'P'),
    criLogRecord('2024-06-10T06:13:20.100000002Z', 'stderr', ' the end'),
    criLogRecord('2024-06-10T08:13:21.2+02:00', 'stdout', 'I0610 an offset the node wrote'),
    criLogRecord('2024-06-10T06:13:22.3Z', 'stderr', 'E0610 run.go:74 "command failed" err="x509: certificate has expired or is not yet valid"'),
  ]
  const pod = sandbox({ podName: 'kube-apiserver-cp-1', namespace: 'kube-system', id: '2b', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:13:00Z' })
  const c = container({ name: 'kube-apiserver', sandbox: pod, id: '9c', state: 'CONTAINER_EXITED', createdAt: '2024-06-10T06:13:19Z', image: 'registry.k8s.io/kube-apiserver:v1.30.2', detail: { log: records } })
  const statePath = join(dir, 'crictl.json')
  await writeFile(statePath, JSON.stringify({ sandboxes: [pod], containers: [c] }))
  const crictl = async (...args: string[]) => {
    const { stdout, stderr } = await run(process.execPath, [fakeCrictl, ...args], { env: { ...process.env, FAKE_CRICTL_STATE: statePath } })
    return { stdout: { text: stdout, cut: false }, stderr: { text: stderr, cut: false } }
  }
  for (const tailLines of [null, 1, 2, 4, 10]) {
    const printed = await crictl('logs', '--timestamps', ...(tailLines === null ? [] : ['--tail', String(tailLines)]), c.id)
    // crictl's --tail counts the file's records (a partial one too); so does a read of just those records.
    const lastRecords = tailLines === null ? records : records.slice(-tailLines)
    assert.deepEqual(
      linesFromCrictlLogs(printed.stdout, printed.stderr, { tailLines: null, limitBytes: 1 << 20 }).lines,
      linesFromCriFile(file(lastRecords), true, ALL).lines,
      `--tail ${tailLines}`,
    )
  }
  const all = await crictl('logs', '--timestamps', c.id)
  assert.deepEqual(linesFromCrictlLogs(all.stdout, all.stderr, { tailLines: null, limitBytes: 1 << 20 }).lines, [
    '2024-06-10T06:13:20.000000001Z I0610 Flag --insecure-port has been deprecated',
    '2024-06-10T06:13:20.100000000Z W0610 a long line, first piece; the second; the end',
    '2024-06-10T08:13:21.200000000+02:00 I0610 an offset the node wrote',
    '2024-06-10T06:13:22.300000000Z E0610 run.go:74 "command failed" err="x509: certificate has expired or is not yet valid"',
  ])
  // Without --timestamps, crictl prints the bare text: the stand-in does too.
  assert.equal((await crictl('logs', '--tail', '1', c.id)).stderr.text, 'E0610 run.go:74 "command failed" err="x509: certificate has expired or is not yet valid"\n')
})
