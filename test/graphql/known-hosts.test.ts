// importKnownHosts against real OpenSSH: 55 sshd daemons on 127.0.0.1 (each on
// its own port, so every line is a `[127.0.0.1]:port` one), 54 registered over
// GraphQL as nodes and one as a jump host, and a known_hosts document made by
// `ssh-keyscan` from them, half of its lines hashed by `ssh-keygen -H`. The 50
// unpinned nodes and the jump host get pinned with the fingerprints
// `ssh-keygen -lf` prints for their host keys, and are used through GraphQL
// afterwards; the payload reports a conflicting pin, @revoked keys, a
// @cert-authority line and the missing nodes exactly; one audit event.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { mapWithConcurrency } from '../../src/concurrency.ts'
import { bearer, TOKENS, TOKENS_DOCUMENT } from '../http/tokens.ts'
import { sshFleetApp, type SshTestApp } from '../support/ssh-app.ts'
import { sshKeygenFingerprint, startSshdFleet, type SshdFleet, type SshdNode } from '../support/sshd.ts'

const run = promisify(execFile)

const PINNED_COUNT = 50
let fleet: SshdFleet
/** kh-1 ... kh-50: unpinned, with lines in the document. */
let fresh: SshdNode[]
/** Pinned to a key that is not its own; the document has its own. */
let wronglyPinned: SshdNode
/** Pinned to its own key, which the document revokes. */
let pinnedRevoked: SshdNode
/** Unpinned; the document has its key, and revokes it. */
let unpinnedRevoked: SshdNode
/** Unpinned; the document has no line for it. */
let absent: SshdNode
/** Registered as the jump host `bastion`, unpinned, with a line in the document. */
let bastion: SshdNode
const JUMP_HOST = 'bastion'
/** A key no node has, and its fingerprint. */
let strayKey: { text: string; fingerprint: string }
/** The document, and where its special lines are. */
let doc: { text: string; caLine: number; revokedLines: [number, number] }

const TYPE_AND_KEY = (pubFile: string): string => readFileSync(pubFile, 'utf8').split(' ').slice(0, 2).join(' ')

before(async () => {
  fleet = await startSshdFleet(PINNED_COUNT + 5, { prefix: 'kh', node: () => ({ crictl: 'none' }) })
  fresh = fleet.nodes.slice(0, PINNED_COUNT)
  ;[wronglyPinned, pinnedRevoked, unpinnedRevoked, absent, bastion] = fleet.nodes.slice(PINNED_COUNT) as [SshdNode, SshdNode, SshdNode, SshdNode, SshdNode]

  const keyFile = (name: string, type: string[]): string => {
    const file = join(fleet.root, name)
    execFileSync('ssh-keygen', ['-q', ...type, '-N', '', '-C', name, '-f', file])
    return `${file}.pub`
  }
  const stray = keyFile('stray_ed25519', ['-t', 'ed25519'])
  strayKey = { text: TYPE_AND_KEY(stray), fingerprint: sshKeygenFingerprint(stray) }
  const ca = TYPE_AND_KEY(keyFile('host_ca', ['-t', 'ed25519']))
  // Keys of other types for some hosts, which those hosts do not serve: ed25519 is preferred, so they are never pinned.
  const ecdsa = TYPE_AND_KEY(keyFile('extra_ecdsa', ['-t', 'ecdsa', '-b', '256']))
  const rsa = TYPE_AND_KEY(keyFile('extra_rsa', ['-t', 'rsa', '-b', '2048']))

  // What ssh-keyscan says of each node (every node but the absent one), 8 at a time.
  const scanned = new Map<string, string>()
  await mapWithConcurrency(fleet.nodes.filter((n) => n !== absent), 8, async (node) => {
    const { stdout } = await run('ssh-keyscan', ['-T', '10', '-t', 'ed25519', '-p', String(node.port), '127.0.0.1'])
    const line = stdout.split('\n').find((l) => l.startsWith(`[127.0.0.1]:${node.port} ssh-ed25519 `))
    assert.ok(line, `ssh-keyscan found no ed25519 key on ${node.name}: ${stdout}`)
    scanned.set(node.name, line)
  })

  const plain: string[] = []
  const toHash: string[] = []
  fleet.nodes.forEach((node, i) => {
    const line = scanned.get(node.name)
    if (!line) return
    const lines = i < 10 ? [`[127.0.0.1]:${node.port} ${rsa}`, `[127.0.0.1]:${node.port} ${ecdsa}`, line] : [line]
    ;(i % 2 === 0 ? toHash : plain).push(...lines)
  })
  const hashFile = join(fleet.root, 'to-hash')
  writeFileSync(hashFile, toHash.join('\n') + '\n')
  execFileSync('ssh-keygen', ['-H', '-f', hashFile], { stdio: 'ignore' })
  const hashed = readFileSync(hashFile, 'utf8').trim().split('\n')
  assert.equal(hashed.length, toHash.length)
  assert.ok(hashed.every((l) => l.startsWith('|1|')), 'ssh-keygen -H hashed every name')

  const lines = [
    '# ssh-keyscan of the kh fleet (test/graphql/known-hosts.test.ts)',
    ...plain,
    '',
    '# hashed with ssh-keygen -H',
    ...hashed,
    `@cert-authority * ${ca}`,
    `@revoked [127.0.0.1]:${pinnedRevoked.port} ${TYPE_AND_KEY(pinnedRevoked.hostKeyPubFile)}`,
    `@revoked * ${TYPE_AND_KEY(unpinnedRevoked.hostKeyPubFile)}`,
  ]
  doc = { text: lines.join('\n') + '\n', caLine: lines.length - 2, revokedLines: [lines.length - 1, lines.length] }
})

after(async () => {
  await fleet?.stop()
})

const NODE_FIELDS = 'name hostKeyFingerprint'
const IMPORT = `mutation($doc: String!, $names: [String!]) {
  importKnownHosts(knownHosts: $doc, names: $names) { pinned unchanged conflicts missing ignoredLines userErrors { code message field } }
}`

/** Registers every node over GraphQL, unpinned but for the two pinned ones, and the jump host, in one request. */
async function registerAll(app: SshTestApp): Promise<void> {
  const pins = new Map([
    [wronglyPinned.name, strayKey.fingerprint],
    [pinnedRevoked.name, pinnedRevoked.fingerprint],
  ])
  const graphqlInput = (input: object): string => JSON.stringify(input).replace(/"(\w+)":/g, '$1:')
  const fields = fleet.nodes
    .filter((node) => node !== bastion)
    .map((node, i) => {
      const input = { name: node.name, host: '127.0.0.1', port: node.port, user: fleet.user, staticPodPath: node.manifests, hostKeyFingerprint: pins.get(node.name) ?? null }
      return `n${i}: registerNode(input: ${graphqlInput(input)}) { userErrors { code message } }`
    })
    .join('\n')
  const jumpHost = `j: putJumpHost(input: ${graphqlInput({ name: JUMP_HOST, host: '127.0.0.1', port: bastion.port, user: fleet.user })}) { userErrors { code message } }`
  const res = await app.gql(`mutation { ${fields}\n${jumpHost} }`)
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  for (const payload of Object.values(res.data)) assert.deepEqual((payload as { userErrors: unknown[] }).userErrors, [])
}

const byName = (a: SshdNode, b: SshdNode): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
const names = (nodes: SshdNode[]): string[] => [...nodes].sort(byName).map((n) => n.name)

function expectedIgnoredLines(pinnedToRevoked: string[]): string[] {
  return [
    `line ${doc.caLine}: @cert-authority "*" is not supported (ssh2 does not verify host certificates); pin each host's own key instead`,
    `line ${doc.revokedLines[0]}: @revoked ssh-ed25519 ${pinnedRevoked.fingerprint}: never pinned` +
      (pinnedToRevoked.length > 0 ? `; pinned to it now, kept and listed in conflicts (updateNode or putJumpHost changes a pin): ${pinnedToRevoked.join(', ')}` : ''),
    `line ${doc.revokedLines[1]}: @revoked ssh-ed25519 ${unpinnedRevoked.fingerprint}: never pinned`,
  ]
}

describe('importKnownHosts', () => {
  it('pins 50 nodes and a jump host from ssh-keyscan lines, plain and ssh-keygen -H hashed, with the fingerprints ssh-keygen -lf prints; reports the rest exactly', async (t) => {
    const app = await sshFleetApp(t, fleet, { SSH_CONNECT_TIMEOUT_MS: '10000' })
    await registerAll(app)
    // A pod on every node, to read back once the nodes are pinned.
    await Promise.all(fleet.nodes.map((n) => writeFile(join(n.manifests, 'web.yaml'), `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx:1.27\n`)))

    const res = await app.gql(IMPORT, { doc: doc.text })
    assert.equal(res.errors, undefined, JSON.stringify(res.errors))
    assert.deepEqual(res.data.importKnownHosts, {
      pinned: [...names(fresh), JUMP_HOST].sort(),
      unchanged: [],
      conflicts: names([wronglyPinned, pinnedRevoked]),
      missing: names([unpinnedRevoked, absent]),
      ignoredLines: expectedIgnoredLines([pinnedRevoked.name]),
      userErrors: [],
    })

    const nodes = (await app.gql(`{ nodes { ${NODE_FIELDS} } }`)).data.nodes as Array<{ name: string; hostKeyFingerprint: string | null }>
    const pinOf = new Map(nodes.map((n) => [n.name, n.hostKeyFingerprint]))
    for (const node of fresh) assert.equal(pinOf.get(node.name), sshKeygenFingerprint(node.hostKeyPubFile), node.name)
    assert.equal(pinOf.get(wronglyPinned.name), strayKey.fingerprint, 'a conflicting pin is kept')
    assert.equal(pinOf.get(pinnedRevoked.name), pinnedRevoked.fingerprint, 'a pin to a revoked key is kept (and reported)')
    assert.equal(pinOf.get(unpinnedRevoked.name), null, 'a revoked key is never pinned')
    assert.equal(pinOf.get(absent.name), null)
    // The jump host is pinned too, and the service now connects to it.
    const jumpHosts = (await app.gql('{ jumpHosts { name hostKeyFingerprint reachable lastError } }')).data.jumpHosts
    assert.deepEqual(jumpHosts, [{ name: JUMP_HOST, hostKeyFingerprint: sshKeygenFingerprint(bastion.hostKeyPubFile), reachable: true, lastError: null }])

    // One audit event for the whole import.
    const audit = (await app.gql('{ auditEvents(limit: 500) { action actor result message node } }')).data.auditEvents as Array<Record<string, string | null>>
    const imports = audit.filter((e) => e.action === 'importKnownHosts')
    assert.equal(imports.length, 1)
    assert.equal(imports[0]?.result, 'OK')
    assert.equal(imports[0]?.actor, 'anonymous')
    assert.equal(imports[0]?.node, null)
    assert.match(imports[0]?.message ?? '', /^pinned 51, unchanged 0, conflicts 2, missing 2, ignored lines 3; pinned: bastion, kh-1, kh-10, /)

    // Reads through GraphQL work on every pinned node; the others say why not.
    const read = await app.gql('{ staticPods(maxAgeSeconds: 0) { nodeName name } }')
    const readNodes = (read.data.staticPods as Array<{ nodeName: string; name: string }>).map((p) => p.nodeName).sort()
    assert.deepEqual(readNodes, names([...fresh, pinnedRevoked]))
    const codes = Object.fromEntries((read.errors ?? []).filter((e) => e.extensions?.code !== 'API_SERVER_UNAVAILABLE').map((e) => [e.extensions?.node, e.extensions?.code]))
    assert.deepEqual(codes, { [wronglyPinned.name]: 'HOST_KEY_MISMATCH', [unpinnedRevoked.name]: 'NODE_UNVERIFIED', [absent.name]: 'NODE_UNVERIFIED' })

    // The same document again changes nothing: the 50 are unchanged.
    const again = await app.gql(IMPORT, { doc: doc.text })
    assert.deepEqual(again.data.importKnownHosts, {
      pinned: [],
      unchanged: [...names(fresh), JUMP_HOST].sort(),
      conflicts: names([wronglyPinned, pinnedRevoked]),
      missing: names([unpinnedRevoked, absent]),
      ignoredLines: expectedIgnoredLines([pinnedRevoked.name]),
      userErrors: [],
    })
  })

  it('names limits the import to those nodes; an unknown name pins nothing', async (t) => {
    const app = await sshFleetApp(t, fleet)
    await registerAll(app)
    const first = fresh[0] as SshdNode
    const limited = await app.gql(IMPORT, { doc: doc.text, names: [absent.name, first.name, first.name, JUMP_HOST] })
    assert.deepEqual(limited.data.importKnownHosts, {
      pinned: [JUMP_HOST, first.name],
      unchanged: [],
      conflicts: [],
      missing: [absent.name],
      ignoredLines: expectedIgnoredLines([]),
      userErrors: [],
    })
    const unknown = await app.gql(IMPORT, { doc: doc.text, names: [(fresh[1] as SshdNode).name, 'no-such-node'] })
    assert.deepEqual(unknown.data.importKnownHosts, {
      pinned: [],
      unchanged: [],
      conflicts: [],
      missing: [],
      ignoredLines: [],
      userErrors: [
        { code: 'NOT_FOUND', message: 'names: no node or jump host named "no-such-node" is registered (see the nodes and jumpHosts queries); nothing was pinned', field: ['names'] },
      ],
    })
    const nodes = (await app.gql(`{ nodes { ${NODE_FIELDS} } }`)).data.nodes as Array<{ name: string; hostKeyFingerprint: string | null }>
    assert.deepEqual(nodes.filter((n) => n.hostKeyFingerprint !== null && fresh.some((f) => f.name === n.name)).map((n) => n.name), [first.name])
    const audit = (await app.gql('{ auditEvents(limit: 500) { action result } }')).data.auditEvents as Array<Record<string, string>>
    assert.deepEqual(audit.filter((e) => e.action === 'importKnownHosts').map((e) => e.result), ['NOT_FOUND', 'OK'])
  })

  it('is for admins only, and bounds the document before reading it', async (t) => {
    const app = await sshFleetApp(t, fleet, { AUTH_TOKENS: TOKENS_DOCUMENT })
    const ask = async (token: string, knownHosts: string) => {
      const res = await app.app.inject({ method: 'POST', url: '/graphql', headers: bearer(token), payload: { query: IMPORT, variables: { doc: knownHosts } } })
      return res.json().data.importKnownHosts
    }
    const operator = await ask(TOKENS.operator, doc.text)
    assert.deepEqual(operator.userErrors, [{ code: 'FORBIDDEN', message: 'ci-operator has the operator role; this needs admin', field: null }])
    const tooLarge = await ask(TOKENS.admin, `# ${'x'.repeat(8 * 1024 * 1024)}\n`)
    assert.deepEqual(tooLarge.userErrors, [
      { code: 'VALIDATION_FAILED', message: 'knownHosts: the document is larger than 8388608 bytes; import it in parts', field: ['knownHosts'] },
    ])
    const audit = await app.app.inject({ method: 'POST', url: '/graphql', headers: bearer(TOKENS.admin), payload: { query: '{ auditEvents { action actor result } }' } })
    assert.deepEqual(
      (audit.json().data.auditEvents as Array<Record<string, string>>).filter((e) => e.action === 'importKnownHosts'),
      [
        { action: 'importKnownHosts', actor: 'root-admin', result: 'VALIDATION_FAILED' },
        { action: 'importKnownHosts', actor: 'ci-operator', result: 'FORBIDDEN' },
      ],
    )
  })
})
