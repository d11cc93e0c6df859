// SSH keys from an ssh-agent (SSH_AUTH_SOCK / SSH_AGENT_SOCK): a real
// `ssh-agent` started here (stopped by its pid), holding the only key the
// node's sshd accepts (`ssh-add`), and the real app reading and writing a
// real sshd's directory through GraphQL with no key file configured; a key
// file together with the agent; and the failures without either, in words
// that name authentication and no key.
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { streamLogger } from '../../src/logging.ts'
import { makeTempDir } from '../helper.ts'
import { sshNodeRecord } from '../support/node-record.ts'
import { testResolver } from '../support/resolver.ts'
import { startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

let fleet: SshdFleet
let sshd: SshdNode
let dir: string
/** A key the node's authorized_keys does not list. */
let otherKeyFile: string
/** Lines of the authorized private key's body: none may show up in an answer or a log line. */
let privateKeyLines: string[]
const agents = new Set<ChildProcess>()

before(async () => {
  fleet = await startSshdFleet(1, { prefix: 'agentauth', node: () => ({ crictl: 'none' }) })
  sshd = fleet.nodes[0] as SshdNode
  dir = await makeTempDir('staticpod-ssh-agent-')
  otherKeyFile = join(dir, 'not_authorized_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'not-authorized', '-f', otherKeyFile])
  privateKeyLines = readFileSync(fleet.clientKeyFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'))
})

after(async () => {
  for (const agent of agents) await stopAgent(agent)
  await fleet?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

interface Agent {
  socket: string
  process: ChildProcess
  /** ssh-add with this agent. */
  sshAdd(...args: string[]): string
}

let agentCount = 0

/** A foreground ssh-agent on its own socket; the file's after hook stops it by pid if the test did not. */
async function startAgent(): Promise<Agent> {
  const socket = join(dir, `agent-${++agentCount}.sock`)
  const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' })
  agents.add(child)
  child.once('exit', () => agents.delete(child))
  const deadline = Date.now() + 10_000
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`ssh-agent did not create ${socket}`)
    await sleep(20)
  }
  return {
    socket,
    process: child,
    sshAdd: (...args) => execFileSync('ssh-add', args, { env: { PATH: process.env.PATH, SSH_AUTH_SOCK: socket }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  }
}

async function stopAgent(child: ChildProcess): Promise<void> {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  process.kill(child.pid, 'SIGTERM')
  await exited
}

/** An agent holding only the key the node accepts, added from a copy that is deleted at once: nothing else can read it. */
async function agentWithNodeKey(): Promise<Agent> {
  const agent = await startAgent()
  const copy = join(dir, `key-for-agent-${agentCount}`)
  await copyFile(fleet.clientKeyFile, copy)
  agent.sshAdd(copy)
  await rm(copy)
  const listed = agent.sshAdd('-l').trim().split('\n')
  assert.equal(listed.length, 1, listed.join('\n'))
  assert.match(listed[0] as string, /staticpod-api-test \(ED25519\)$/)
  return agent
}

interface App {
  app: FastifyInstance
  lines: string[]
  gql(query: string, variables?: Record<string, unknown>): Promise<{ data: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>
}

/** The real app on the test sshd with the given SSH settings only (no key file unless given), its log captured at debug level. */
async function appWith(t: { after(fn: () => Promise<void>): unknown }, sshEnv: Record<string, string>): Promise<App> {
  const appDir = await makeTempDir('staticpod-ssh-agent-app-')
  const config = loadConfig({
    STORE_URL: `sqlite:${join(appDir, 'staticpod-api.db')}`,
    LOCAL_NODE_PATH: 'off',
    SSH_STATE_DIR: join(appDir, 'ssh-state'),
    SSH_KUBELET_HEALTHZ_PORT: '9',
    SSH_CONNECT_TIMEOUT_MS: '5000',
    ...sshEnv,
  })
  const lines: string[] = []
  const app = await buildApp(config, { logger: streamLogger('debug', { write: (line: string) => void lines.push(line) }), resolveHost: testResolver })
  t.after(async () => {
    await app.close()
    await rm(appDir, { recursive: true, force: true })
  })
  await app.services.store.createNode(
    sshNodeRecord({ name: sshd.name, host: '127.0.0.1', port: sshd.port, user: fleet.user, staticPodPath: sshd.manifests, hostKeyFingerprint: sshd.fingerprint }),
  )
  return {
    app,
    lines,
    async gql(query, variables) {
      const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
      return res.json()
    },
  }
}

const manifest = (name: string, image: string): string => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n  containers:\n  - name: main\n    image: ${image}\n`
const READ = `query($node: String!) { nodes { name agent { reachable lastError } } staticPods(node: $node, maxAgeSeconds: 0) { name hash manifest } }`

/** A write, an update with expectedHash and a live read, checked against the node's directory. */
async function readAndWrite(app: App, pod: string): Promise<void> {
  const created = await app.gql(`mutation($input: CreateStaticPodInput!) { createStaticPod(input: $input) { staticPod { hash } userErrors { code message } } }`, {
    input: { node: sshd.name, manifest: manifest(pod, 'nginx:1.27') },
  })
  assert.deepEqual(created.data?.createStaticPod?.userErrors, [], JSON.stringify(created))
  assert.equal(await readFile(join(sshd.manifests, `${pod}.yaml`), 'utf8'), manifest(pod, 'nginx:1.27'))
  const updated = await app.gql(`mutation($input: UpdateStaticPodInput!) { updateStaticPod(input: $input) { staticPod { revision } userErrors { code message } } }`, {
    input: { node: sshd.name, name: pod, expectedHash: created.data.createStaticPod.staticPod.hash, manifest: manifest(pod, 'nginx:1.28') },
  })
  assert.deepEqual(updated.data?.updateStaticPod?.userErrors, [], JSON.stringify(updated))
  assert.equal(updated.data.updateStaticPod.staticPod.revision, 2)
  assert.equal(await readFile(join(sshd.manifests, `${pod}.yaml`), 'utf8'), manifest(pod, 'nginx:1.28'))
  const read = await app.gql(READ, { node: sshd.name })
  assert.deepEqual(read.errors?.filter((e) => e.extensions?.code !== 'API_SERVER_UNAVAILABLE') ?? [], [])
  assert.deepEqual(read.data.nodes, [{ name: sshd.name, agent: { reachable: true, lastError: null } }])
  assert.equal(read.data.staticPods.find((p: { name: string }) => p.name === pod)?.manifest, manifest(pod, 'nginx:1.28'))
}

/** The node's read fails NODE_UNREACHABLE with this reason, and neither the answer nor the log has a line of the private key. */
async function assertUnreachable(app: App, reason: RegExp): Promise<void> {
  const res = await app.gql(READ, { node: sshd.name })
  const lastError = res.data?.nodes?.[0]?.agent?.lastError ?? ''
  assert.equal(res.data?.nodes?.[0]?.agent?.reachable, false)
  assert.match(lastError, new RegExp(`^NODE_UNREACHABLE: node ${sshd.name} \\(127\\.0\\.0\\.1:${sshd.port}\\) cannot be reached over SSH: `))
  assert.match(lastError, reason)
  const nodeErrors = (res.errors ?? []).filter((e) => e.extensions?.code !== 'API_SERVER_UNAVAILABLE')
  assert.equal(nodeErrors.length, 1, JSON.stringify(res.errors))
  assert.equal(nodeErrors[0]?.extensions?.code, 'NODE_UNREACHABLE')
  assert.match(nodeErrors[0]?.message ?? '', reason)
  assertNoKeyMaterial(JSON.stringify(res), app.lines)
  assert.equal(app.app.services.agents.sshPoolStats()?.connectionsOpened, 0)
}

function assertNoKeyMaterial(answer: string, logLines: string[]): void {
  for (const text of [answer, ...logLines]) {
    assert.doesNotMatch(text, /PRIVATE KEY/)
    for (const line of privateKeyLines) assert.ok(!text.includes(line), `key material in: ${text.slice(0, 200)}`)
  }
}

describe('SSH keys from an ssh-agent', () => {
  it('with the agent holding the only key and no key file, reads and writes work through GraphQL', async (t) => {
    const agent = await agentWithNodeKey()
    const app = await appWith(t, { SSH_AUTH_SOCK: agent.socket })
    await readAndWrite(app, 'from-agent')
    assert.equal(app.app.services.agents.sshPoolStats()?.connectionsOpened, 1)
    assertNoKeyMaterial('', app.lines)
  })

  it('SSH_AGENT_SOCK wins over SSH_AUTH_SOCK', async (t) => {
    const agent = await agentWithNodeKey()
    const nowhere = join(dir, 'no-agent-here.sock')
    const agentSockWins = await appWith(t, { SSH_AUTH_SOCK: nowhere, SSH_AGENT_SOCK: agent.socket })
    await readAndWrite(agentSockWins, 'agent-sock-wins')
    const authSockLoses = await appWith(t, { SSH_AUTH_SOCK: agent.socket, SSH_AGENT_SOCK: nowhere })
    await assertUnreachable(authSockLoses, /SSH authentication failed \(the ssh-agent \(SSH_AGENT_SOCK \/ SSH_AUTH_SOCK\) could not be reached/)
  })

  it('a key file works with the agent configured too: the file when the agent has no usable key, the agent when the file is refused', async (t) => {
    const nowhere = join(dir, 'no-agent-either.sock')
    const fileAndDeadAgent = await appWith(t, { SSH_PRIVATE_KEY_FILE: fleet.clientKeyFile, SSH_AUTH_SOCK: nowhere })
    await readAndWrite(fileAndDeadAgent, 'file-with-agent-set')
    const agent = await agentWithNodeKey()
    const refusedFileAndAgent = await appWith(t, { SSH_PRIVATE_KEY_FILE: otherKeyFile, SSH_AUTH_SOCK: agent.socket })
    await readAndWrite(refusedFileAndAgent, 'agent-after-refused-file')
  })

  it('without a key or an agent, NODE_UNREACHABLE says authentication is not configured', async (t) => {
    const app = await appWith(t, {})
    await assertUnreachable(
      app,
      /: no SSH authentication is configured: no private key \(set SSH_PRIVATE_KEY_FILE or SSH_PRIVATE_KEY\) and no ssh-agent \(SSH_AUTH_SOCK or SSH_AGENT_SOCK\)$/,
    )
  })

  it('an agent that stopped, or holds no key, is SSH authentication failed, naming the agent and no key', async (t) => {
    const stopped = await agentWithNodeKey()
    await stopAgent(stopped.process)
    const gone = await appWith(t, { SSH_AUTH_SOCK: stopped.socket })
    await assertUnreachable(
      gone,
      new RegExp(`: SSH authentication failed \\(the ssh-agent \\(SSH_AGENT_SOCK / SSH_AUTH_SOCK\\) could not be reached or could not sign, and the node accepted no other key for user ${fleet.user}\\)$`),
    )
    // The raw reason is in the debug log, for the operator.
    assert.ok(gone.lines.some((l) => /"level":20/.test(l) && /Failed to connect to agent/.test(l)), 'the debug log has what ssh2 said')

    const empty = await agentWithNodeKey()
    empty.sshAdd('-D')
    assert.throws(() => empty.sshAdd('-l'), 'ssh-add -l exits 1 for an agent without identities')
    const noKeys = await appWith(t, { SSH_AUTH_SOCK: empty.socket })
    await assertUnreachable(noKeys, new RegExp(`: SSH authentication failed \\(the node accepted none of the keys of the ssh-agent for user ${fleet.user}\\)$`))

    const refused = await startAgent()
    refused.sshAdd(otherKeyFile)
    const withFile = await appWith(t, { SSH_AUTH_SOCK: refused.socket, SSH_PRIVATE_KEY_FILE: otherKeyFile })
    await assertUnreachable(withFile, new RegExp(`: SSH authentication failed \\(the node accepted none of the keys of the key file and the ssh-agent for user ${fleet.user}\\)$`))
  })

  it('the agent socket is an absolute Unix socket path; SSH_AGENT_SOCK wins over SSH_AUTH_SOCK', () => {
    const base = { LOCAL_NODE_PATH: 'off', STORE_URL: 'sqlite::memory:' }
    assert.equal(loadConfig({ ...base, SSH_AUTH_SOCK: '/run/user/1000/agent.sock' }).sshAgentSocket, '/run/user/1000/agent.sock')
    assert.equal(loadConfig({ ...base, SSH_AUTH_SOCK: '/a.sock', SSH_AGENT_SOCK: '/b.sock' }).sshAgentSocket, '/b.sock')
    assert.equal(loadConfig({ ...base, SSH_AGENT_SOCK: '/b.sock' }).sshAgentSocket, '/b.sock')
    assert.equal(loadConfig({ ...base, SSH_AUTH_SOCK: '' }).sshAgentSocket, undefined)
    assert.equal(loadConfig(base).sshAgentSocket, undefined)
    for (const [variable, value] of [
      ['SSH_AUTH_SOCK', 'agent.sock'],
      ['SSH_AGENT_SOCK', `/${'x'.repeat(107)}`],
      ['SSH_AUTH_SOCK', '/tmp/a\0b'],
    ] as const) {
      assert.throws(
        () => loadConfig({ ...base, [variable]: value }),
        (err) => err instanceof ConfigError && err.message.startsWith(`Invalid ${variable}: expected the absolute path of a Unix socket (at most 107 bytes)`),
        `${variable}=${value}`,
      )
    }
  })
})
