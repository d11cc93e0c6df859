// What the API says about an SSH node it cannot reach: one of a few fixed
// phrases, whatever answered on the node's port (nothing, silence, HTTP, an SSH
// banner followed by junk that makes ssh2's parser throw, a real sshd that
// refuses our key), and never the library's own text, which goes to the
// service log at debug level instead. Real servers on 127.0.0.1 throughout.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { channelFailure, CONNECT_FAILURE, CONNECT_FAILURES, connectFailure, connectionLost, loggableError } from '../../src/agents/connect-errors.ts'
import { SftpError } from '../../src/agents/sftp-fs.ts'
import { loadConfig } from '../../src/config.ts'
import { streamLogger } from '../../src/logging.ts'
import { AddressLookupError } from '../../src/net/address-allow.ts'
import { makeTempDir } from '../helper.ts'
import { sshFleetApp } from '../support/ssh-app.ts'
import { startBlackHole, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'
import { testResolver } from '../support/resolver.ts'
import { sshNodeRecord } from '../support/node-record.ts'

const CONNECT_TIMEOUT_MS = 1_000
const UNRESOLVABLE = 'unresolvable-node.test'

/** Text of ssh2, of the socket layer or of the resolver that must never reach the API. */
const LIBRARY_TEXT =
  /typed array|invalid|bad packet|bad identification|protocol|ECONN|EHOST|ENET|ETIMEDOUT|ENOTFOUND|EAI_|getaddrinfo|lost before handshake|timed out while|handshake failed|all configured authentication|host denied|no response from server|channel open failure|keepalive/i

/** SSH-2.0 ident, then a packet whose padding is longer than the packet: ssh2 throws "Invalid typed array length: -92". */
const NEGATIVE_LENGTH_PACKET = Buffer.concat([Buffer.from('SSH-2.0-x\r\n'), Buffer.from([0, 0, 0, 12, 103]), Buffer.alloc(11)])

/** Not SSH after the ident: the same bytes every run (random ones could now and then look like the start of a long packet). */
const JUNK = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 167 + 0xa5) & 0xff))

let fleet: SshdFleet
let sshd: SshdNode
let otherKeyFile: string
const servers: Array<() => Promise<void>> = []
const ports: Record<string, number> = {}

before(async () => {
  fleet = await startSshdFleet(1, { prefix: 'connect', node: () => ({ crictl: 'none' }) })
  sshd = fleet.nodes[0] as SshdNode
  // A key the node's authorized_keys does not list.
  otherKeyFile = join(fleet.root, 'not_authorized_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'not-authorized', '-f', otherKeyFile])

  ports.closed = await closedPort()
  const hole = await startBlackHole()
  servers.push(() => hole.close())
  ports.silent = hole.port
  const http = createHttpServer((_req, res) => res.end('<html>hello</html>'))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  servers.push(async () => {
    http.closeAllConnections()
    await new Promise((resolve) => http.close(resolve))
  })
  ports.http = (http.address() as AddressInfo).port
  ports.garbage = await tcpServer((socket) => socket.write(NEGATIVE_LENGTH_PACKET))
  ports.junk = await tcpServer((socket) => socket.end(Buffer.concat([Buffer.from('SSH-2.0-x\r\n'), JUNK])))
  ports.hangup = await tcpServer((socket) => socket.destroy())
  ports.banner = await tcpServer((socket) => socket.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'))
})

after(async () => {
  await Promise.all(servers.map((close) => close()))
  await fleet?.stop()
})

/** A port where nothing listens: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A TCP server on 127.0.0.1 doing onConnection to every connection; closed in the file's after hook. */
async function tcpServer(onConnection: (socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>()
  const server: Server = createTcpServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.once('close', () => sockets.delete(socket))
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as AddressInfo).port
}

interface LoggedApp {
  app: FastifyInstance
  lines: Array<Record<string, any>>
  gql(query: string, variables?: Record<string, unknown>): Promise<{ data: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>
  addNode(name: string, host: string, port: number, fingerprint: string | null): Promise<void>
}

/** The real app with the log captured at debug level, no local node, SSH with the given key. */
async function loggedApp(t: { after(fn: () => Promise<void>): unknown }, keyFile: string): Promise<LoggedApp> {
  const dir = await makeTempDir('staticpod-connect-errors-')
  const config = loadConfig({
    STORE_URL: `sqlite:${join(dir, 'staticpod-api.db')}`,
    LOCAL_NODE_PATH: 'off',
    SSH_PRIVATE_KEY_FILE: keyFile,
    SSH_STATE_DIR: join(dir, 'ssh-state'),
    SSH_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    SSH_KUBELET_HEALTHZ_PORT: '9',
  })
  const lines: Array<Record<string, any>> = []
  const app = await buildApp(config, { logger: streamLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line)) }), resolveHost: testResolver })
  t.after(async () => {
    await app.close()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    app,
    lines,
    async gql(query, variables) {
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
      return res.json()
    },
    async addNode(name, host, port, fingerprint) {
      await app.services.store.createNode(sshNodeRecord({ name, host, port, user: fleet.user, staticPodPath: '/nonexistent', hostKeyFingerprint: fingerprint }))
    },
  }
}

/** What each test node is, and the phrase its failure must end with. */
function cases(): Array<{ name: string; host: string; port: number; reason: RegExp }> {
  const notSsh = new RegExp(`: ${CONNECT_FAILURE.notSsh}( \\(the connection closed during the SSH handshake\\))?$`)
  return [
    { name: 'closed', host: '127.0.0.1', port: ports.closed!, reason: /: connection refused$/ },
    { name: 'silent', host: '127.0.0.1', port: ports.silent!, reason: new RegExp(`: timed out \\(no SSH handshake within ${CONNECT_TIMEOUT_MS} ms, SSH_CONNECT_TIMEOUT_MS\\)$`) },
    { name: 'http', host: '127.0.0.1', port: ports.http!, reason: notSsh },
    { name: 'garbage', host: '127.0.0.1', port: ports.garbage!, reason: notSsh },
    { name: 'junk', host: '127.0.0.1', port: ports.junk!, reason: notSsh },
    { name: 'hangup', host: '127.0.0.1', port: ports.hangup!, reason: notSsh },
    { name: 'banner', host: '127.0.0.1', port: ports.banner!, reason: notSsh },
    { name: 'unresolved', host: UNRESOLVABLE, port: 22, reason: /: host name not resolved$/ },
  ]
}

const READ_ALL = '{ staticPods(maxAgeSeconds: 0) { name } nodes { name agent { reachable lastError } } }'

function agentsByName(data: any): Map<string, { reachable: boolean; lastError: string | null }> {
  return new Map((data.nodes as Array<{ name: string; agent: { reachable: boolean; lastError: string | null } }>).map((n) => [n.name, n.agent]))
}

describe('connection failures in fixed words', () => {
  it('pinned nodes: refused, timed out, not an SSH server, not resolved, authentication failed; no library text; the raw error in the debug log', async (t) => {
    const app = await loggedApp(t, otherKeyFile)
    for (const c of cases()) await app.addNode(c.name, c.host, c.port, sshd.fingerprint)
    await app.addNode('wrong-key', '127.0.0.1', sshd.port, sshd.fingerprint)

    const res = await app.gql(READ_ALL)
    const agents = agentsByName(res.data)
    for (const c of cases()) {
      const agent = agents.get(c.name)
      assert.equal(agent?.reachable, false, c.name)
      const where = `${c.host.replace(/\./g, '\\.')}:${c.port}`
      assert.match(agent?.lastError ?? '', new RegExp(`^NODE_UNREACHABLE: node ${c.name} \\(${where}\\) cannot be reached over SSH`), c.name)
      assert.match(agent?.lastError ?? '', c.reason, c.name)
      assert.doesNotMatch(agent?.lastError ?? '', LIBRARY_TEXT, c.name)
    }
    assert.match(
      agents.get('wrong-key')?.lastError ?? '',
      new RegExp(`^NODE_UNREACHABLE: node wrong-key \\(127\\.0\\.0\\.1:${sshd.port}\\) cannot be reached over SSH: SSH authentication failed \\(the node refused the service's key for user ${fleet.user}\\)$`),
    )
    // The query's errors say the same, and nothing more.
    assert.equal(res.errors?.length, cases().length + 1)
    for (const e of res.errors ?? []) {
      assert.equal(e.extensions?.code, 'NODE_UNREACHABLE', e.message)
      assert.ok(CONNECT_FAILURES.some((phrase) => e.message.includes(`cannot be reached over SSH: ${phrase}`)), e.message)
      assert.doesNotMatch(e.message, LIBRARY_TEXT)
    }

    // The service log has what ssh2 said, at debug level, bounded.
    const raw = app.lines.filter((l) => l.msg === 'SSH: connecting failed')
    const garbage = raw.find((l) => l.node === 'garbage')
    assert.equal(garbage?.level, 20, 'debug')
    assert.match(garbage?.cause?.message ?? '', /Invalid typed array length: -92/)
    assert.equal(raw.find((l) => l.node === 'closed')?.cause?.code, 'ECONNREFUSED')
    assert.equal(raw.find((l) => l.node === 'wrong-key')?.cause?.level, 'client-authentication')
    for (const line of raw) assert.ok(String(line.cause?.message).length <= 501, line.cause?.message)
    assert.equal(app.app.services.agents.sshPoolStats()?.connectionsOpened, 0)
  })

  it('unpinned nodes registered over GraphQL: NODE_UNVERIFIED, and why the key could not be seen is one of the phrases', async (t) => {
    const app = await loggedApp(t, fleet.clientKeyFile)
    for (const c of cases()) {
      const reg = await app.gql(`mutation($input: RegisterNodeInput!) { registerNode(input: $input) { userErrors { code } } }`, {
        input: { name: c.name, host: c.host, port: c.port },
      })
      assert.deepEqual(reg.data.registerNode.userErrors, [], c.name)
    }
    const res = await app.gql(READ_ALL)
    const agents = agentsByName(res.data)
    for (const c of cases()) {
      const lastError = agents.get(c.name)?.lastError ?? ''
      assert.match(lastError, /^NODE_UNVERIFIED: /, c.name)
      const seen = /its key could not be seen either \((.*)\)$/.exec(lastError)?.[1] ?? ''
      assert.match(seen, new RegExp(`^node ${c.name} \\(.*\\) cannot be reached over SSH: `), c.name)
      assert.match(seen, c.reason, c.name)
      assert.doesNotMatch(lastError, LIBRARY_TEXT, c.name)
    }
    assert.match(app.lines.find((l) => l.node === 'garbage' && l.what === 'observing the host key')?.cause?.message ?? '', /Invalid typed array length/)
  })

  it('over an established connection: SFTP statuses and channel failures in fixed words too', async (t) => {
    const app = await sshFleetApp(t, fleet)
    await app.addNode(sshd, { name: 'missing-dir', staticPodPath: '/nonexistent/manifests' })
    await app.addNode(sshd, { name: 'bare' })
    const res = await app.gql('{ staticPods(maxAgeSeconds: 0) { name } nodes { name kubeletUnavailableReason runtimeUnavailableReason agent { reachable lastError } } }')
    for (const text of [...(res.errors ?? []).map((e) => e.message), JSON.stringify(res.data)]) assert.doesNotMatch(text, LIBRARY_TEXT)
    const [bare, missing] = res.data.nodes
    // The SFTP status, in fixed words, with the path.
    assert.equal(missing.agent.lastError, 'NODE_UNREACHABLE: node missing-dir could not be read: opendir /nonexistent/manifests: no such file or directory')
    // Forwarding to a port where nothing listens on the node: the node's reason code, in words.
    assert.equal(bare.agent.reachable, true)
    assert.equal(bare.kubeletUnavailableReason, 'no kubelet answers on 127.0.0.1:9 on the node (the node could not connect)')
    assert.equal(bare.runtimeUnavailableReason, 'crictl not found on the node')
  })
})

describe('the mapping', () => {
  const err = (fields: Record<string, unknown>, message = 'raw library text'): Error => Object.assign(new Error(message), fields)

  it('maps every kind of connect failure to its phrase', () => {
    const table: Array<[unknown, string]> = [
      [err({ code: 'ECONNREFUSED', level: 'client-socket' }), 'connection refused'],
      [err({ code: 'ETIMEDOUT', level: 'client-socket' }), 'timed out'],
      [err({ level: 'client-timeout' }, 'Timed out while waiting for handshake'), 'timed out'],
      [err({ code: 'EHOSTUNREACH', level: 'client-socket' }), 'host unreachable'],
      [err({ code: 'ENETUNREACH', level: 'client-socket' }), 'host unreachable'],
      [err({ code: 'ENOTFOUND', level: 'client-socket' }), 'host name not resolved'],
      [err({ code: 'EAI_AGAIN', level: 'client-socket' }), 'host name not resolved'],
      [err({ level: 'client-dns' }), 'host name not resolved'],
      [new AddressLookupError('h.example', 'ETIMEOUT'), 'host name not resolved'],
      [err({ level: 'client-authentication' }, 'All configured authentication methods failed'), 'SSH authentication failed'],
      [err({ level: 'protocol' }, 'Bad identification start'), 'not an SSH server'],
      [err({ level: 'handshake' }, 'Handshake failed: no matching key exchange algorithm'), 'not an SSH server'],
      [new RangeError('Invalid typed array length: -92'), 'not an SSH server'],
      [err({ code: 'ECONNRESET', level: 'client-socket' }), 'not an SSH server'],
      [err({ code: 'EADDRNOTAVAIL', level: 'client-socket' }), 'connection failed'],
      ['a string', 'connection failed'],
    ]
    for (const [input, phrase] of table) assert.equal(connectFailure(input), phrase, String(input))
    assert.ok(CONNECT_FAILURES.includes(CONNECT_FAILURE.notAllowed))
  })

  it('lost connections, channels, SFTP statuses: fixed words; the log record is bounded', () => {
    assert.equal(connectionLost(err({ level: 'client-timeout' }, 'Keepalive timeout')), 'the node stopped answering keepalives')
    assert.equal(connectionLost(err({ code: 'ECONNRESET' })), 'the connection was reset')
    assert.equal(connectionLost(new RangeError('Invalid typed array length: -3')), 'the connection failed')
    assert.equal(channelFailure(err({ reason: 1 }, '(SSH) Channel open failure: administratively prohibited')), 'administratively prohibited by the node')
    assert.equal(channelFailure(err({ reason: 2 }, '(SSH) Channel open failure: Connection refused')), 'the node could not connect')
    assert.equal(channelFailure(err({ reason: '' }, '(SSH) Channel open failure: server closed channel unexpectedly')), 'the node refused the channel')

    assert.equal(new SftpError('open', '/etc/kubernetes/manifests/a.yaml', err({ code: 2 }, 'whatever the node says')).message, 'open /etc/kubernetes/manifests/a.yaml: no such file or directory')
    assert.equal(new SftpError('create', '/x', err({ code: 3 })).message, 'create /x: permission denied')
    assert.equal(new SftpError('read', '/x', err({ code: 99 })).message, 'read /x: SFTP status 99')
    assert.equal(new SftpError('read', '/x', new Error('No response from server')).message, 'read /x: the SFTP request failed')
    const unsupported = new SftpError('fsync', '/x', new Error('Server does not support this extended request'))
    assert.equal(unsupported.unsupported, true)
    assert.equal(unsupported.message, "fsync /x: the node's SFTP server does not support it")

    const logged = loggableError(Object.assign(new Error('x'.repeat(10_000), { cause: new Error('y'.repeat(10_000)) }), { code: 'E1', level: 'protocol' }))
    assert.equal(logged.code, 'E1')
    assert.equal(logged.level, 'protocol')
    assert.ok(String(logged.message).length <= 501)
    assert.ok(String((logged.cause as { message: string }).message).length <= 501)
  })
})
