// Real OpenSSH servers for the SSH agent's tests: one sshd per simulated node,
// each on 127.0.0.1 with its own config, host key, PID file, free port and
// staticPodPath directory, and a crictl stand-in (fake-crictl.mjs) and a
// journalctl stand-in (fake-journalctl.mjs, reading the node's journal.json:
// setJournal) on the PATH its sessions get, so the agent runs exactly what it
// would run on a node.
//
// Every daemon is started here in the foreground (-D), so its pid is the
// listener's; stop() and kill() signal that pid and the per-connection
// processes it forked (found through /proc), and nothing else.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const fakeCrictl = fileURLToPath(new URL('./fake-crictl.mjs', import.meta.url))
const fakeJournalctl = fileURLToPath(new URL('./fake-journalctl.mjs', import.meta.url))
const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/usr/bin/sshd', '/sbin/sshd']
const START_TIMEOUT_MS = 10_000

/** Where the node's crictl stand-in gets its answers. */
type CrictlMode =
  /** No crictl on the node's PATH at all. */
  | 'none'
  /** A sandbox and running containers for every manifest present in staticPodPath. */
  | 'from-manifests'
  /** Exactly this {sandboxes, containers, ...} document (see fake-crictl.mjs). */
  | { state: unknown }

export interface SshdNodeOptions {
  crictl?: CrictlMode
  /** Default: the journalctl stand-in, reading the node's journalFile. 'none': no stand-in (this machine's own journalctl, if it has one, is on the PATH). */
  journal?: 'none' | 'entries'
  /** sshd's PermitRootLogin: 'no' for a node that is reached as an unprivileged user (and root through sudo). */
  permitRootLogin?: 'no' | 'prohibit-password'
  /**
   * Run the daemon in this network namespace (test/support/netns.ts), listening
   * on these addresses of it, instead of on 127.0.0.1 of the test's own.
   */
  network?: { namespace: string; listen: string[] }
}

export interface SshdNode {
  /** Node name to register it under. */
  name: string
  port: number
  dir: string
  /** This node's staticPodPath. */
  manifests: string
  hostKeyPubFile: string
  /** `SHA256:...` as `ssh-keygen -lf` prints it. */
  fingerprint: string
  /** The listening daemon's pid (changes on restart). */
  pid(): number
  /** SIGKILL to the daemon and to every process it forked (the live sessions). */
  kill(): Promise<void>
  /** Starts the daemon again on the same port with the same host key. */
  start(): Promise<void>
  /** The document the node's crictl serves, for crictl: { state } (null otherwise). */
  crictlStateFile: string | null
  /** Replaces the document the node's crictl serves (crictl: { state } nodes only). */
  setCrictlState(state: unknown): Promise<void>
  /** The entries the node's journalctl serves (fake-journalctl.mjs); null when it has none. */
  journalFile: string | null
  /** Replaces the node's journal: entries as fake-journalctl.mjs reads them ({ at, message, unit?, ... } or journal fields). */
  setJournal(journal: unknown[] | Record<string, unknown>): Promise<void>
}

export interface SshdFleet {
  root: string
  nodes: SshdNode[]
  user: string
  clientKeyFile: string
  /** Env for buildApp that lets the service reach these nodes. */
  env: Record<string, string>
  stop(): Promise<void>
}

let sshdPath: string | undefined

/**
 * The sshd binary: found, or installed with apt when running as root, or else
 * a one-line error saying what to install. The SSH tests never skip silently.
 */
function findSshd(): string {
  if (sshdPath) return sshdPath
  const found = () => SSHD_CANDIDATES.find((p) => isExecutable(p))
  let path = found()
  if (!path && process.getuid?.() === 0 && isExecutable('/usr/bin/apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 })
    spawnSync('apt-get', ['install', '-y', '-qq', 'openssh-server'], { stdio: 'ignore', env, timeout: 300_000 })
    path = found()
  }
  if (!path) throw new Error('SSH tests need OpenSSH sshd: install the openssh-server package (apt-get install -y openssh-server)')
  sshdPath = path
  return path
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** What `ssh-keygen -lf` prints for a public key file, the second field. */
export function sshKeygenFingerprint(pubFile: string): string {
  return execFileSync('ssh-keygen', ['-lf', pubFile], { encoding: 'utf8' }).split(' ')[1] as string
}

/** Ports handed out by this process, so two nodes never get the same one. */
const portsGiven = new Set<number>()

/** A loopback port nobody listens on now, never one this process handed out before (sshd nodes, the bench's latency proxy). */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    await new Promise((resolve) => server.close(resolve))
    if (address === null || typeof address === 'string') throw new Error('no port')
    if (portsGiven.has(address.port)) continue
    portsGiven.add(address.port)
    return address.port
  }
}

/** The daemon wrote its PID file: it has bound its port (another process answering there does not count). */
function wrotePidFile(pidFile: string, pid: number | undefined): boolean {
  try {
    return Number(readFileSync(pidFile, 'utf8').trim()) === pid
  } catch {
    return false
  }
}

async function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Every process whose parent chain leads to pid (from /proc), deepest last. */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // "pid (comm) state ppid ...": comm may contain spaces and ')', so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = []
  const queue = [pid]
  while (queue.length > 0 && found.length < 10_000) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child)
      queue.push(child)
    }
  }
  return found
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

const running = new Set<ChildProcess>()
process.once('exit', () => {
  // Safety net if a test file dies without its after hook: our daemons only.
  for (const child of running) if (child.pid) signal(child.pid, 'SIGKILL')
})

/** Starts count sshd nodes named `${prefix}-1` ... Stop them with fleet.stop() (in an after hook). */
export async function startSshdFleet(count: number, options: { prefix?: string; node?: (index: number) => SshdNodeOptions } = {}): Promise<SshdFleet> {
  const sshd = findSshd()
  const root = await mkdtemp(join(tmpdir(), 'staticpod-sshd-'))
  await chmod(root, 0o755)
  const user = userInfo().username
  const clientKeyFile = join(root, 'id_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'staticpod-api-test', '-f', clientKeyFile])
  // sshd reads it as the user logging in, who is not always root (test/support/sudo-user.ts): a public key, readable by all.
  await writeFile(join(root, 'authorized_keys'), await readFile(`${clientKeyFile}.pub`), { mode: 0o644 })
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 })

  const prefix = options.prefix ?? 'ssh'
  const nodes: SshdNode[] = []
  try {
    // Host keys and configs in parallel (ssh-keygen is the slow part), daemons a few at a time.
    const prepared = await Promise.all(
      Array.from({ length: count }, (_, i) => prepareNode(sshd, root, user, `${prefix}-${i + 1}`, options.node?.(i) ?? {})),
    )
    for (let i = 0; i < prepared.length; i += 10) {
      await Promise.all(prepared.slice(i, i + 10).map((node) => node.start()))
    }
    nodes.push(...prepared)
  } catch (err) {
    await stopAll(nodes, root)
    throw err
  }

  return {
    root,
    nodes,
    user,
    clientKeyFile,
    env: { SSH_PRIVATE_KEY_FILE: clientKeyFile, SSH_STATE_DIR: join(root, 'state') },
    stop: () => stopAll(nodes, root),
  }
}

async function stopAll(nodes: SshdNode[], root: string): Promise<void> {
  await Promise.all(nodes.map((n) => n.kill()))
  await rm(root, { recursive: true, force: true })
}

async function prepareNode(sshd: string, root: string, user: string, name: string, options: SshdNodeOptions): Promise<SshdNode> {
  const dir = join(root, name)
  const manifests = join(dir, 'manifests')
  const bin = join(dir, 'bin')
  await mkdir(manifests, { recursive: true })
  await mkdir(bin, { recursive: true })
  const hostKey = join(dir, 'ssh_host_ed25519_key')
  await new Promise<void>((resolve, reject) => {
    const keygen = spawn('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', hostKey], { stdio: 'ignore' })
    keygen.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh-keygen exited ${code}`))))
  })
  const fingerprint = openSshFingerprintOfPubFile(`${hostKey}.pub`)

  const crictl = options.crictl ?? 'from-manifests'
  // sshd runs a command through the user's shell, and Debian's bash reads
  // ~/.bashrc when started by sshd even without a terminal. Root's may be slow
  // (this machine's runs `pyenv init`, whose rehash takes a lock: under a
  // parallel test run, seconds per command, past the crictl timeout in CI).
  // A real node's login scripts are its own; a test node gets an empty HOME.
  const sessionEnv = [`PATH=${bin}:/usr/local/bin:/usr/bin:/bin`, `HOME=${dir}`]
  if (crictl !== 'none') {
    // Its settings are in the script, not only the session: sudo (a SUDO node's crictl) starts it with a fresh environment.
    const crictlEnv: string[] = []
    if (crictl === 'from-manifests') {
      crictlEnv.push(`FAKE_CRICTL_MANIFESTS=${manifests}`, `FAKE_CRICTL_NODE=${name}`)
    } else {
      await writeFile(join(dir, 'crictl.json'), JSON.stringify(crictl.state))
      crictlEnv.push(`FAKE_CRICTL_STATE=${join(dir, 'crictl.json')}`)
    }
    sessionEnv.push(...crictlEnv)
    await writeFile(join(bin, 'crictl'), `#!/bin/sh\n${crictlEnv.join(' ')} exec ${process.execPath} ${fakeCrictl} "$@"\n`, { mode: 0o755 })
  }
  const journalFile = options.journal === 'none' ? null : join(dir, 'journal.json')
  if (journalFile !== null) {
    await writeFile(journalFile, '[]\n', { mode: 0o644 })
    await writeFile(join(bin, 'journalctl'), `#!/bin/sh\nFAKE_JOURNALCTL_ENTRIES=${journalFile} exec ${process.execPath} ${fakeJournalctl} "$@"\n`, { mode: 0o755 })
  }
  const crictlStateFile = typeof crictl === 'object' ? join(dir, 'crictl.json') : null

  let port = await freePort()
  let child: ChildProcess | undefined
  const config = (p: number) => `# test node ${name} (test/support/sshd.ts)
Port ${p}
${(options.network?.listen ?? ['127.0.0.1']).map((address) => `ListenAddress ${address}`).join('\n')}
AddressFamily inet
HostKey ${hostKey}
PidFile ${pidFile}
PermitRootLogin ${options.permitRootLogin ?? 'prohibit-password'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile ${join(root, 'authorized_keys')}
# the temp directory is world-writable, which StrictModes rejects for the key path
StrictModes no
# pam_loginuid fails in unprivileged containers
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
# the agent asks the kubelet's healthz through a local forward
AllowTcpForwarding local
MaxStartups 200:30:400
MaxSessions 64
LoginGraceTime 30
LogLevel ERROR
SetEnv ${sessionEnv.join(' ')}
Subsystem sftp internal-sftp
`
  const configFile = join(dir, 'sshd_config')
  const pidFile = join(dir, 'sshd.pid')

  const start = async (): Promise<void> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      await writeFile(configFile, config(port))
      await rm(pidFile, { force: true })
      const args = ['-D', '-f', configFile, '-E', join(dir, 'sshd.log')]
      // ip netns exec execs sshd in place: the pid is still the daemon's.
      const proc = options.network ? spawn('ip', ['netns', 'exec', options.network.namespace, sshd, ...args], { stdio: 'ignore' }) : spawn(sshd, args, { stdio: 'ignore' })
      running.add(proc)
      proc.once('exit', () => running.delete(proc))
      const deadline = Date.now() + START_TIMEOUT_MS
      const up = () => proc.exitCode === null && wrotePidFile(pidFile, proc.pid)
      while (Date.now() < deadline && proc.exitCode === null && !up()) await sleep(20)
      // In a namespace of its own the daemon is out of this process's reach; its PID file says it listens.
      if (up() && (options.network !== undefined || (await acceptsTcp(port)))) {
        child = proc
        return
      }
      signal(proc.pid as number, 'SIGKILL')
      port = await freePort() // taken by someone else in the meantime: another port
    }
    const log = existsSync(join(dir, 'sshd.log')) ? readFileSync(join(dir, 'sshd.log'), 'utf8').trim().split('\n').slice(-1)[0] : ''
    throw new Error(`sshd for ${name} did not start: ${log}`)
  }

  const node: SshdNode = {
    name,
    get port() {
      return port
    },
    dir,
    manifests,
    hostKeyPubFile: `${hostKey}.pub`,
    fingerprint,
    crictlStateFile,
    async setCrictlState(state) {
      if (crictlStateFile === null) throw new Error(`node ${name} serves no crictl document (crictl: { state } only)`)
      // Whole or not at all: a crictl call in between reads the old document or the new one.
      await writeFile(`${crictlStateFile}.tmp`, JSON.stringify(state))
      await rename(`${crictlStateFile}.tmp`, crictlStateFile)
    },
    journalFile,
    async setJournal(journal) {
      if (journalFile === null) throw new Error(`node ${name} has no journalctl (journal: 'none')`)
      await writeFile(`${journalFile}.tmp`, JSON.stringify(journal), { mode: 0o644 })
      await rename(`${journalFile}.tmp`, journalFile)
    },
    pid: () => child?.pid ?? -1,
    async kill() {
      const proc = child
      if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
      for (const pid of descendantsOf(proc.pid).reverse()) signal(pid, 'SIGKILL')
      signal(proc.pid, 'SIGKILL')
      await exited
      child = undefined
    },
    start,
  }
  return node
}

/** OpenSSH's SHA256 fingerprint of a .pub file, computed the way ssh-keygen does (base64, no padding). */
function openSshFingerprintOfPubFile(pubFile: string): string {
  const blob = Buffer.from(readFileSync(pubFile, 'utf8').split(' ')[1] as string, 'base64')
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

/**
 * A TCP listener on 127.0.0.1 that accepts connections and never says a word:
 * what a node behind a black-holing firewall looks like to an SSH client once
 * the SYN got through.
 */
export async function startBlackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    port: address.port,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
