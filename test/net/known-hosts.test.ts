// The known_hosts reader (src/net/known-hosts.ts) against OpenSSH's own tools:
// keys made by ssh-keygen, fingerprints compared with `ssh-keygen -lf`, names
// hashed by `ssh-keygen -H`, and which lines match a host compared with what
// `ssh-keygen -F` finds in the same document (OpenSSH's hostfile.c and match.c
// doing the matching).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { isServiceError } from '../../src/errors.ts'
import {
  choosePin,
  hostFieldMatches,
  KNOWN_HOSTS_LIMITS,
  KnownHostsIndex,
  knownHostsName,
  parseKnownHosts,
  type HostKeyLine,
} from '../../src/net/known-hosts.ts'

let dir: string
/** `type base64` of each generated key, and the fingerprint ssh-keygen -lf prints for it. */
const keys: Record<string, { text: string; fingerprint: string }> = {}
const KEY_SPECS: Array<[string, string[]]> = [
  ['ed25519', ['-t', 'ed25519']],
  ['ed25519-b', ['-t', 'ed25519']],
  ['p256', ['-t', 'ecdsa', '-b', '256']],
  ['p384', ['-t', 'ecdsa', '-b', '384']],
  ['p521', ['-t', 'ecdsa', '-b', '521']],
  ['rsa', ['-t', 'rsa', '-b', '2048']],
]

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'staticpod-known-hosts-'))
  for (const [name, args] of KEY_SPECS) {
    const file = join(dir, name)
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', file])
    const [type, base64] = readFileSync(`${file}.pub`, 'utf8').split(' ')
    keys[name] = { text: `${type} ${base64}`, fingerprint: keygenFingerprint(`${file}.pub`) }
  }
})

after(() => rmSync(dir, { recursive: true, force: true }))

function keygenFingerprint(file: string): string {
  return execFileSync('ssh-keygen', ['-lf', file], { encoding: 'utf8' }).split(' ')[1] as string
}

const key = (name: string): string => (keys[name] as { text: string }).text
const fp = (name: string): string => (keys[name] as { fingerprint: string }).fingerprint

/** Writes a document, hashes it with ssh-keygen -H, and answers the hashed text. */
function hashed(text: string): string {
  const file = join(dir, `hash-${Math.random().toString(36).slice(2)}`)
  writeFileSync(file, text)
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' })
  return readFileSync(file, 'utf8')
}

/** The line numbers `ssh-keygen -F name` finds in the document (OpenSSH's matching). */
function openSshLookup(text: string, name: string): number[] {
  const file = join(dir, 'lookup')
  writeFileSync(file, text)
  let out: string
  try {
    out = execFileSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' })
  } catch {
    return [] // exits 1 when nothing is found
  }
  return [...out.matchAll(/^# Host .* found: line (\d+)/gm)].map((m) => Number(m[1]))
}

function lookup(text: string, name: string): number[] {
  return new KnownHostsIndex(parseKnownHosts(text).keys).lookup(name).map((k) => k.line)
}

describe('known_hosts documents', () => {
  it('reads every supported key type, with the fingerprint ssh-keygen -lf prints', () => {
    const text = KEY_SPECS.map(([name]) => `host-${name} ${key(name)} a comment`).join('\n') + '\n'
    const doc = parseKnownHosts(text)
    assert.deepEqual(doc.ignored, [])
    assert.deepEqual(
      doc.keys.map((k) => [k.line, k.keyType, k.fingerprint]),
      KEY_SPECS.map(([name], i) => [i + 1, key(name).split(' ')[0], fp(name)]),
    )
  })

  it('skips comments and blank lines, and takes CRLF, tabs and leading blanks', () => {
    const text = `# a comment\n\n   \n\t# indented comment\n  web-1\t${key('ed25519').replace(' ', '\t')}  trailing words\r\nweb-2 ${key('rsa')}\r\n`
    const doc = parseKnownHosts(text)
    assert.deepEqual(doc.ignored, [])
    assert.deepEqual(doc.keys.map((k) => [k.line, k.fingerprint]), [[5, fp('ed25519')], [6, fp('rsa')]])
  })

  it('reports every line it cannot use, with its number and why', () => {
    const ed = key('ed25519').split(' ')[1] as string
    const rsa = key('rsa').split(' ')[1] as string
    const text = [
      `@cert-authority *.example.com ${key('ed25519')}`,
      `a ssh-dss ${rsa}`,
      `b sk-ssh-ed25519@openssh.com ${ed}`,
      `c ssh-ed25519-cert-v01@openssh.com ${ed}`,
      `d 2048 65537 12345678901234567890`,
      `e ssh-rsa ${ed}`,
      `f ssh-ed25519 not*base64`,
      `g ssh-ed25519 ${ed.slice(0, 40)}`,
      `@foo h ${key('ed25519')}`,
      `|1|bm90IDIwIGJ5dGVz|AAAA ${key('ed25519')}`,
      `|2|${'A'.repeat(27)}=|${'A'.repeat(27)}= ${key('ed25519')}`,
      `only-a-host`,
      `i ssh-ed25519`,
      `j ssh-ed25519 # no key`,
      `${'k'.repeat(1023)} ${key('ed25519')}`,
      `x${'y'.repeat(KNOWN_HOSTS_LIMITS.lineChars)} ${key('ed25519')}`,
    ].join('\n')
    const doc = parseKnownHosts(text)
    assert.deepEqual(doc.keys, [])
    assert.deepEqual(doc.revoked, [])
    const reasons = doc.ignored.map((i) => `${i.line}: ${i.reason}`)
    const expected: RegExp[] = [
      /^1: @cert-authority "\*\.example\.com" is not supported \(ssh2 does not verify host certificates\)/,
      /^2: key type "ssh-dss" is not supported \(known: ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa\)$/,
      /^3: key type "sk-ssh-ed25519@openssh\.com" is not supported/,
      /^4: key type "ssh-ed25519-cert-v01@openssh\.com" is not supported/,
      /^5: key type "2048" \(an SSH protocol 1 RSA key\) is not supported/,
      /^6: the ssh-rsa key does not parse \(its blob is not an ssh-rsa key\)$/,
      /^7: the ssh-ed25519 key is not base64$/,
      /^8: the ssh-ed25519 key does not parse/,
      /^9: unknown marker "@foo"/,
      /^10: "\|1\|bm90IDIwIGJ5dGVz\|AAAA" is not a hashed host name as OpenSSH writes them/,
      /^11: "\|2\|A+=\|A+=" is not a hashed host name/,
      /^12: not a known_hosts line/,
      /^13: not a known_hosts line/,
      /^14: not a known_hosts line/,
      /^15: host pattern "k+"… is 1023 characters or longer/,
      /^16: longer than 16384 characters$/,
    ]
    assert.equal(reasons.length, expected.length, reasons.join('\n'))
    expected.forEach((re, i) => assert.match(reasons[i] as string, re))
    // No key material in a reason: fingerprints at most, never the base64 key.
    for (const reason of reasons) assert.ok(!reason.includes(ed.slice(10, 40)) && !reason.includes(rsa.slice(10, 40)), reason)
  })

  it('@revoked keys are collected whatever their host field, and are not usable keys', () => {
    const doc = parseKnownHosts(`@revoked * ${key('rsa')}\n@revoked |1|broken ${key('ed25519')}\nweb-1 ${key('p256')}\n`)
    assert.deepEqual(doc.revoked.map((r) => [r.line, r.keyType, r.fingerprint]), [[1, 'ssh-rsa', fp('rsa')], [2, 'ssh-ed25519', fp('ed25519')]])
    assert.deepEqual(doc.keys.map((k) => k.line), [3])
    assert.deepEqual(doc.ignored, [])
  })

  it('matches hashed names as ssh-keygen -H writes them, port 22 bare and other ports as [host]:port', () => {
    const plain = `web-1.example.com,10.0.0.1 ${key('ed25519')}\n[10.0.0.2]:2222 ${key('p256')}\n`
    const text = hashed(plain)
    assert.match(text, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /)
    assert.equal(text.trim().split('\n').length, 3, 'ssh-keygen -H writes one line per name')
    assert.deepEqual(lookup(text, knownHostsName('web-1.example.com', 22)), [1])
    assert.deepEqual(lookup(text, knownHostsName('WEB-1.Example.COM', 22)), [1], 'host names are compared lowercased, as ssh does')
    assert.deepEqual(lookup(text, knownHostsName('10.0.0.1', 22)), [2])
    assert.deepEqual(lookup(text, knownHostsName('10.0.0.2', 2222)), [3])
    assert.deepEqual(lookup(text, knownHostsName('10.0.0.2', 22)), [])
    assert.deepEqual(lookup(text, knownHostsName('10.0.0.1', 2222)), [])
    assert.deepEqual(lookup(text, knownHostsName('web-2.example.com', 22)), [])
    for (const name of ['web-1.example.com', '10.0.0.1', '[10.0.0.2]:2222', '10.0.0.2', 'web-2.example.com']) {
      assert.deepEqual(lookup(text, name), openSshLookup(text, name), name)
    }
  })

  it('matches plain names, patterns, wildcards and negations as ssh-keygen -F does', () => {
    const text = [
      `web-1,web-2 ${key('ed25519')}`,
      `*.example.com,!bad.example.com ${key('ed25519')}`,
      `[10.0.0.?]:2222 ${key('p384')}`,
      `Upper.Example.Org ${key('rsa')}`,
      `* ${key('p256')}`,
      `!web-2,web-? ${key('rsa')}`,
      `[fd00::1]:2200,fd00::2 ${key('p521')}`,
      `*.*.example.com ${key('ed25519-b')}`,
      `web-1,!web-1 ${key('rsa')}`,
      `10.0.0.*:2222 ${key('p256')}`,
    ].join('\n')
    const names = [
      'web-1', 'web-2', 'web-3', 'a.example.com', 'bad.example.com', 'x.y.example.com', 'example.com', '[10.0.0.5]:2222', '[10.0.0.50]:2222',
      '10.0.0.5', 'upper.example.org', '[fd00::1]:2200', 'fd00::1', 'fd00::2', '[web-1]:2222',
    ]
    for (const name of names) {
      const ours = lookup(text, name)
      assert.deepEqual(ours, openSshLookup(text, name), name)
    }
    // What the comparisons above stand on: some hosts match several lines, some one, negations exclude.
    assert.deepEqual(lookup(text, 'web-1'), [1, 5, 6])
    assert.deepEqual(lookup(text, 'bad.example.com'), [5])
    assert.deepEqual(lookup(text, '[10.0.0.50]:2222'), [5])
  })

  it('a glob of many stars against a long name answers at once (no exponential search)', () => {
    const pattern = `${'*a'.repeat(40)}*b`
    const doc = parseKnownHosts(`${pattern} ${key('ed25519')}\n`)
    const started = performance.now()
    assert.equal(hostFieldMatches((doc.keys[0] as HostKeyLine).hosts, 'a'.repeat(900)), false)
    assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`)
  })

  it('is bounded in bytes and lines before it is parsed', () => {
    const tooBig = 'x'.repeat(KNOWN_HOSTS_LIMITS.maxBytes + 1)
    assert.throws(() => parseKnownHosts(tooBig), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED' && /larger than 8388608 bytes/.test(err.message) && err.field?.[0] === 'knownHosts')
    // Multi-byte characters count as the bytes they are.
    const wide = 'é'.repeat(KNOWN_HOSTS_LIMITS.maxBytes / 2 + 1)
    assert.ok(wide.length <= KNOWN_HOSTS_LIMITS.maxBytes)
    assert.throws(() => parseKnownHosts(wide), /larger than/)
    const atLimit = '#\n'.repeat(KNOWN_HOSTS_LIMITS.lines)
    assert.deepEqual(parseKnownHosts(atLimit), { keys: [], revoked: [], ignored: [] })
    assert.throws(() => parseKnownHosts(`${atLimit}#`), /more than 100000 lines/)
    assert.throws(() => parseKnownHosts(`${atLimit}\n`), /more than 100000 lines/)
  })

  it('chooses ed25519, then ECDSA P-256, P-384, P-521, then RSA; two different keys of that type choose nothing', () => {
    const line = (name: string, n: number): string => `h${n} ${key(name)}`
    const text = ['rsa', 'p521', 'p384', 'p256', 'ed25519', 'ed25519-b'].map(line).join('\n')
    const all = parseKnownHosts(text).keys
    const pick = (...lines: number[]): string | null => {
      const choice = choosePin(all.filter((k) => lines.includes(k.line)))
      return choice.kind === 'one' ? choice.key.fingerprint : choice.kind
    }
    assert.equal(pick(1, 2, 3, 4, 5), fp('ed25519'))
    assert.equal(pick(1, 2, 3, 4), fp('p256'))
    assert.equal(pick(1, 2, 3), fp('p384'))
    assert.equal(pick(1, 2), fp('p521'))
    assert.equal(pick(1), fp('rsa'))
    assert.equal(pick(), 'none')
    assert.equal(pick(1, 5, 6), 'ambiguous')
    // The same key on two lines is one key.
    const twice = parseKnownHosts(`a ${key('ed25519')}\nb ${key('ed25519')}\n`).keys
    const choice = choosePin(twice)
    assert.equal(choice.kind === 'one' && choice.key.fingerprint, fp('ed25519'))
  })
})
