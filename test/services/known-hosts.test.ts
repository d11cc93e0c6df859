// importKnownHosts's rules that need no SSH server (the import contacts no
// node): the real app and SQLite store, nodes put in the store at addresses
// nothing listens on, keys made by ssh-keygen. Wildcards and negation, port 22
// names, several key types for one host, two keys of one type, the local node,
// the bound on hashed lines, the cap on ignoredLines, a pin set meanwhile.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { build, type TestApp } from '../helper.ts'
import { sshNodeRecord } from '../support/node-record.ts'

let dir: string
const keys: Record<string, { text: string; fingerprint: string }> = {}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'staticpod-known-hosts-service-'))
  for (const [name, args] of [
    ['ed-a', ['-t', 'ed25519']],
    ['ed-b', ['-t', 'ed25519']],
    ['ecdsa', ['-t', 'ecdsa', '-b', '384']],
    ['rsa', ['-t', 'rsa', '-b', '2048']],
  ] as const) {
    const file = join(dir, name)
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', file])
    keys[name] = {
      text: readFileSync(`${file}.pub`, 'utf8').split(' ').slice(0, 2).join(' '),
      fingerprint: execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1] as string,
    }
  }
})

after(() => rmSync(dir, { recursive: true, force: true }))

const key = (name: string): string => (keys[name] as { text: string }).text
const fp = (name: string): string => (keys[name] as { fingerprint: string }).fingerprint

const IMPORT = `mutation($doc: String!, $names: [String!]) {
  importKnownHosts(knownHosts: $doc, names: $names) { pinned unchanged conflicts missing ignoredLines userErrors { code message field } }
}`

async function withNodes(t: Parameters<typeof build>[0], nodes: Array<{ name: string; host: string; port?: number; pin?: string }>): Promise<TestApp> {
  const app = await build(t)
  for (const n of nodes) {
    await app.app.services.store.createNode(
      sshNodeRecord({ name: n.name, host: n.host, port: n.port ?? 22, user: 'root', staticPodPath: '/etc/kubernetes/manifests', hostKeyFingerprint: n.pin ?? null }),
    )
  }
  return app
}

async function importDoc(app: TestApp, doc: string, names?: string[]) {
  const res = await app.gql(IMPORT, { doc, names })
  assert.equal(res.errors, undefined, JSON.stringify(res.errors))
  return res.data.importKnownHosts
}

async function pins(app: TestApp): Promise<Record<string, string | null>> {
  const res = await app.gql('{ nodes { name kind hostKeyFingerprint } }')
  return Object.fromEntries((res.data.nodes as Array<{ name: string; kind: string; hostKeyFingerprint: string | null }>).filter((n) => n.kind === 'SSH').map((n) => [n.name, n.hostKeyFingerprint]))
}

describe('importKnownHosts rules', () => {
  it('wildcards and negation as OpenSSH reads them; port 22 names bare, hashed or not', async (t) => {
    const app = await withNodes(t, [
      { name: 'web-a', host: 'a.example.com' },
      { name: 'web-bad', host: 'bad.example.com' },
      { name: 'web-other-port', host: 'c.example.com', port: 2222 },
      { name: 'db', host: '10.1.2.3' },
      { name: 'db-upper', host: 'DB.Example.Org' },
    ])
    const hashFile = join(dir, 'hash-22')
    writeFileSync(hashFile, `10.1.2.3 ${key('rsa')}\n`)
    execFileSync('ssh-keygen', ['-H', '-f', hashFile], { stdio: 'ignore' })
    const doc = [`*.example.com,!bad.example.com ${key('ed-a')}`, readFileSync(hashFile, 'utf8').trim(), `db.example.org ${key('ecdsa')}`].join('\n')
    assert.deepEqual(await importDoc(app, doc), {
      pinned: ['db', 'db-upper', 'web-a'],
      unchanged: [],
      conflicts: [],
      // Negated, and a port other than 22, which a bare pattern does not match.
      missing: ['web-bad', 'web-other-port'],
      ignoredLines: [],
      userErrors: [],
    })
    assert.deepEqual(await pins(app), { db: fp('rsa'), 'db-upper': fp('ecdsa'), 'web-a': fp('ed-a'), 'web-bad': null, 'web-other-port': null })
  })

  it('several types for one host pin the preferred one; two keys of that type pin nothing and say which lines', async (t) => {
    const app = await withNodes(t, [
      { name: 'mixed', host: '10.0.0.1' },
      { name: 'no-ed25519', host: '10.0.0.2' },
      { name: 'two-ed25519', host: '10.0.0.3' },
      { name: 'pinned-rsa', host: '10.0.0.4', pin: fp('rsa') },
    ])
    const doc = [
      `10.0.0.1,10.0.0.2,10.0.0.4 ${key('rsa')}`,
      `10.0.0.1,10.0.0.2 ${key('ecdsa')}`,
      `10.0.0.1,10.0.0.3,10.0.0.4 ${key('ed-a')}`,
      `10.0.0.3 ${key('ed-b')}`,
      `10.0.0.3 ${key('rsa')}`,
    ].join('\n')
    assert.deepEqual(await importDoc(app, doc), {
      pinned: ['mixed', 'no-ed25519'],
      // Its pin is one of its keys in the document, if not the preferred one.
      unchanged: ['pinned-rsa'],
      conflicts: [],
      missing: ['two-ed25519'],
      ignoredLines: [`lines 3, 4: different ssh-ed25519 keys for two-ed25519 (${fp('ed-a')}, ${fp('ed-b')}); none is pinned (updateNode or putJumpHost pins the right one)`],
      userErrors: [],
    })
    const now = await pins(app)
    assert.equal(now.mixed, fp('ed-a'))
    assert.equal(now['no-ed25519'], fp('ecdsa'))
    assert.equal(now['two-ed25519'], null)
  })

  it('names: the local node has no host key; nothing is pinned', async (t) => {
    const app = await withNodes(t, [{ name: 'n1', host: '10.0.0.1' }])
    const res = await importDoc(app, `10.0.0.1 ${key('ed-a')}\n`, ['n1', 'local'])
    assert.deepEqual(res.userErrors, [{ code: 'VALIDATION_FAILED', message: 'names: local is the local node, which has no host key; nothing was pinned', field: ['names'] }])
    assert.deepEqual(await pins(app), { n1: null })
  })

  it('bounds the tries hashed and wildcard lines cost: such lines × hosts at most 1,000,000', async (t) => {
    const app = await withNodes(t, Array.from({ length: 25 }, (_, i) => ({ name: `m${i}`, host: `10.0.1.${i}` })))
    // Hashed lines would need more than 8 MiB to get there; wildcard lines count the same and are shorter.
    const doc = Array.from({ length: 40_001 }, (_, i) => `10.9.${i % 250}.* ${key('ed-a')}`).join('\n')
    const over = await importDoc(app, doc)
    assert.deepEqual(over.userErrors, [
      {
        code: 'VALIDATION_FAILED',
        message: 'knownHosts: 40001 hashed or wildcard lines for 25 hosts is more than 1000000 tries; pass names, or import the document in parts',
        field: ['knownHosts'],
      },
    ])
    // names decide the hosts counted.
    const named = await importDoc(app, doc, ['m1', 'm2'])
    assert.deepEqual(named.userErrors, [])
    assert.deepEqual(named.missing, ['m1', 'm2'])
  })

  it('ignoredLines lists at most 1,000 lines, then how many more', async (t) => {
    const app = await withNodes(t, [{ name: 'n1', host: '10.0.0.1' }])
    const doc = Array.from({ length: 1500 }, (_, i) => `h${i} ssh-dss AAAA`).join('\n')
    const res = await importDoc(app, doc)
    assert.equal(res.ignoredLines.length, 1001)
    assert.match(res.ignoredLines[0], /^line 1: key type "ssh-dss" is not supported/)
    assert.match(res.ignoredLines[999], /^line 1000: /)
    assert.equal(res.ignoredLines[1000], '… and 500 more lines not used')
  })

  it('pinHostKeyIfUnpinned pins once; a pin already there is kept and answered', async (t) => {
    const app = await withNodes(t, [{ name: 'n1', host: '10.0.0.1' }])
    const nodes = app.app.services.nodes
    assert.deepEqual(await nodes.pinHostKeyIfUnpinned('n1', fp('ed-a')), { pinnedNow: true, hostKeyFingerprint: fp('ed-a') })
    assert.deepEqual(await nodes.pinHostKeyIfUnpinned('n1', fp('ed-b')), { pinnedNow: false, hostKeyFingerprint: fp('ed-a') })
    assert.equal(await nodes.pinHostKeyIfUnpinned('local', fp('ed-b')), null)
    assert.equal(await nodes.pinHostKeyIfUnpinned('gone', fp('ed-b')), null)
    assert.deepEqual(await pins(app), { n1: fp('ed-a') })
  })
})
