// npm run bench:write-floor: how much of a warm fan-out write is the service,
// and how much is what the write must do on the wire. Three writes to all N
// harness nodes (../shared/bench: nodes.sh up N, RTT_MS=20 for a network's
// distance), interleaved in one process so that a machine whose speed drifts
// (a shared VM) moves all three alike:
//
//   bare:    the harness's bare ssh2 write (ssh2-ref.js): a temp file, then
//            posix-rename; 4 requests, 4 round trips, no lock, no flush;
//   floor:   a bare ssh2 client sending exactly the requests of the
//            service's warm write, in its 5 round trips (docs/architecture.md,
//            "How few times the write path waits for the node"): lock +
//            listing, backup link + owner and mode + bytes + fsync +
//            read-back, rename + directory fsync, release; coalesced per tick
//            as the service's pool does (agents/ssh-coalescing.ts), and with no
//            service logic at all: no store, no GraphQL, no checks of the
//            answers beyond success;
//   service: applyStaticPodToNodes (ALL_AT_ONCE, no readiness wait) through
//            GraphQL, as bench/rollout-fanout.ts runs it.
//
// floor / bare is what the guarantees cost on this machine (where every
// node's sshd, sftp-server and fsyncs share the service's two cores);
// service / floor is what the service adds to them. The floor and the bare
// write go to a directory of their own next to each node's manifests, so the
// service's listings do not see them. Keep the floor's requests in step with
// agents/file-agent.ts (bench:sftp-requests counts the service's).
//
//   RTT_MS=20 bash ../shared/bench/nodes.sh up 50 && npm run bench:write-floor -- --iters 20
//
// Prints one JSON line. A benchmark, never an assertion.

import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { connect as tcpConnect } from 'node:net'
import { dirname, join } from 'node:path'
import { Client, type SFTPWrapper } from 'ssh2'
import { openSshFingerprint } from '../src/agents/host-key.ts'
import { coalescingRequestsPerTick, coalescingWritesPerTick } from '../src/agents/ssh-coalescing.ts'
import { benchServiceApp, fleetOperations, readBenchFleet, timingStats, type BenchNode } from './harness-fleet.ts'

const FILE = 'kube-scheduler.yaml'
const fleet = await readBenchFleet(process.argv.slice(2), 4)
const privateKey = await readFile(join(fleet.dir, 'id_ed25519'))
const contents = [Buffer.from(fleet.manifest), Buffer.from(fleet.variant)]

interface Session {
  conn: Client
  sftp: SFTPWrapper
  /** Where the floor and the bare write write: not the service's staticPodPath. */
  dir: string
  state: string
}

function connect(node: BenchNode): Promise<Session> {
  const expected = fleet.knownHosts.get(`[${node.host}]:${node.port}`)
  return new Promise((resolve, reject) => {
    const conn = new Client()
    conn.on('error', reject)
    conn.on('ready', () =>
      conn.sftp((err, sftp) => {
        if (err) return reject(err)
        const root = join(dirname(node.dir), 'write-floor')
        resolve({ conn, sftp: coalescingRequestsPerTick(sftp), dir: join(root, 'manifests'), state: join(root, 'state') })
      }),
    )
    conn.connect({
      sock: coalescingWritesPerTick(tcpConnect({ host: node.host, port: node.port })),
      username: 'root',
      privateKey,
      readyTimeout: 60_000,
      hostVerifier: (key: Buffer) => expected !== undefined && openSshFingerprint(key) === expected,
    })
  })
}

/** One SFTP request as a promise (ssh2's callbacks). */
function request<T = void>(start: (done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T))))
}

const hex = (): string => randomBytes(6).toString('hex')

/** The harness's bare write (ssh2-ref.js writeAtomic). */
async function bareWrite(s: Session, data: Buffer): Promise<void> {
  const dest = join(s.dir, FILE)
  const tmp = `${dest}.tmp-${process.pid}`
  await request((done) => s.sftp.writeFile(tmp, data, { mode: 0o644 }, done))
  await request((done) => s.sftp.ext_openssh_rename(tmp, dest, done))
}

/** The service's warm write on the wire: its 21 requests, in its 5 round trips. */
async function floorWrite(s: Session, data: Buffer): Promise<void> {
  const { sftp } = s
  const lock = join(s.state, 'lock')
  const now = Date.now()
  const holder = JSON.stringify({ actor: 'bench', instance: 'write-floor', hostname: 'bench', pid: process.pid, acquiredAt: new Date(now).toISOString(), expiresAt: new Date(now + 30_000).toISOString(), token: hex() })
  const temp = join(s.dir, `.${FILE}.${hex()}.staticpod-api.tmp`)
  const target = join(s.dir, FILE)
  // 1: the lock, the write's files, the listing.
  const [, tempHandle, dirHandle, listHandle, fileHandle] = await Promise.all([
    request((done) => sftp.symlink(holder, lock, done)), // ssh2 swaps the paths for OpenSSH's server, which takes them the other way round (sftp-fs.ts)
    request<Buffer>((done) => sftp.open(temp, 'xw+', { mode: 0o600 }, done)),
    request<Buffer>((done) => sftp.open(s.dir, 'r', done)),
    request<Buffer>((done) => sftp.opendir(s.dir, done)),
    request<Buffer>((done) => sftp.open(target, 'r', done)),
  ])
  // 2: the directory and the file, read.
  const old = Buffer.alloc(64 * 1024)
  await Promise.all([request<unknown>((done) => sftp.readdir(listHandle, done)), request<number>((done) => sftp.read(fileHandle, old, 0, old.length, 0, done))])
  sftp.close(listHandle, () => undefined)
  sftp.close(fileHandle, () => undefined)
  // 3: the backup linked, the temp file's owner and mode, bytes, flush, read-back.
  const readBack = Buffer.alloc(data.length + 1)
  const [, , , , read] = await Promise.all([
    request((done) => sftp.ext_openssh_hardlink(target, join(s.state, 'backups', FILE, `${now}-${hex()}.yaml`), done)),
    request((done) => sftp.fsetstat(tempHandle, { mode: 0o600, uid: 0, gid: 0 }, done)),
    request((done) => sftp.write(tempHandle, data, 0, data.length, 0, done)),
    request((done) => sftp.ext_openssh_fsync(tempHandle, done)),
    request<number>((done) => sftp.read(tempHandle, readBack, 0, readBack.length, 0, done)),
  ])
  if (read !== data.length) throw new Error('the node did not keep the bytes')
  sftp.close(tempHandle, () => undefined)
  // 4: the rename, and the directory's flush behind it.
  await Promise.all([request((done) => sftp.ext_openssh_rename(temp, target, done)), request((done) => sftp.ext_openssh_fsync(dirHandle, done))])
  sftp.close(dirHandle, () => undefined)
  // 5: the release: moved aside, read, removed.
  const aside = join(s.state, `.lock.${hex()}.removed`)
  await Promise.all([
    request((done) => sftp.ext_openssh_rename(lock, aside, done)),
    request<string>((done) => sftp.readlink(aside, done)),
    request((done) => sftp.unlink(aside, done)),
  ])
}

const { app, close } = await benchServiceApp(fleet, { RATE_LIMIT_PER_MINUTE: '100000' })
const roots = fleet.nodes.map((node) => join(dirname(node.dir), 'write-floor'))
try {
  const { apply } = fleetOperations(app, fleet.nodes)
  for (const root of roots) await mkdir(join(root, 'state', 'backups', FILE), { recursive: true }).then(() => mkdir(join(root, 'manifests'), { recursive: true }))
  const sessions = await Promise.all(fleet.nodes.map(connect))
  await Promise.all(sessions.map((s) => bareWrite(s, contents[0]!)))
  // Warm-up: connections, the service's pool and caches, the nodes' page cache.
  for (let i = 0; i < 3; i++) {
    await apply(fleet.variant + `# warm-up ${i}\n`)
    await Promise.all(sessions.map((s) => floorWrite(s, contents[i % 2]!)))
  }
  const times = { bare: [] as number[], floor: [] as number[], service: [] as number[] }
  const timed = async (run: () => Promise<unknown>): Promise<number> => {
    const started = performance.now()
    await run()
    return performance.now() - started
  }
  for (let i = 0; i < fleet.iters; i++) {
    const data = contents[i % 2]!
    times.bare.push(await timed(() => Promise.all(sessions.map((s) => bareWrite(s, data)))))
    times.floor.push(await timed(() => Promise.all(sessions.map((s) => floorWrite(s, data)))))
    times.service.push(await apply(data.toString('utf8')))
  }
  for (const s of sessions) s.conn.end()
  const bare = timingStats(times.bare)
  const floor = timingStats(times.floor)
  const service = timingStats(times.service)
  const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100
  process.stdout.write(
    `${JSON.stringify({
      nodes: fleet.nodes.length,
      bare_warm_ms: bare,
      floor_warm_ms: floor,
      service_apply_warm_ms: service,
      floor_over_bare: ratio(floor.median, bare.median),
      service_over_bare: ratio(service.median, bare.median),
      service_over_floor: ratio(service.median, floor.median),
    })}\n`,
  )
} finally {
  await close()
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })))
}
