import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ServiceError } from '../../src/errors.ts'
import { checkFileName, defaultFileName, isDns1123Label, isDns1123Subdomain, mirrorPodName } from '../../src/manifest/names.ts'
import { isStrayFileName } from '../../src/manifest/stray.ts'

describe('DNS-1123 names', () => {
  it('labels', () => {
    for (const ok of ['a', 'web', 'kube-apiserver', '0', 'a1-b2', 'a'.repeat(63)]) assert.ok(isDns1123Label(ok), ok)
    for (const bad of ['', 'A', 'web_1', '-a', 'a-', 'a.b', 'a'.repeat(64), 'é', 'a b']) assert.ok(!isDns1123Label(bad), bad)
  })

  it('subdomains', () => {
    for (const ok of ['a', 'a.b', 'kube-apiserver', 'x.y-z.0', `${'a'.repeat(63)}.${'b'.repeat(63)}`]) assert.ok(isDns1123Subdomain(ok), ok)
    for (const bad of ['', '.a', 'a.', 'a..b', 'A.b', 'a_b', '-a.b', 'a-.b', 'a.-b']) assert.ok(!isDns1123Subdomain(bad), bad)
    // Kubernetes limits the whole name, not each part: a 100-character pod name is fine.
    assert.ok(isDns1123Subdomain('a'.repeat(100)))
    assert.ok(isDns1123Subdomain(`${'a'.repeat(64)}.b`))
    const longest = [63, 63, 63, 61].map((n) => 'a'.repeat(n)).join('.')
    assert.equal(longest.length, 253)
    assert.ok(isDns1123Subdomain(longest))
    assert.ok(!isDns1123Subdomain(`${longest}a`))
  })
})

describe('mirrorPodName and defaultFileName', () => {
  it('is <name>-<node lowercased>, as the kubelet names it', () => {
    assert.equal(mirrorPodName('kube-apiserver', 'CP-1'), 'kube-apiserver-cp-1')
    assert.equal(mirrorPodName('etcd', 'node.example.com'), 'etcd-node.example.com')
  })

  it('defaults the file name to <name>.yaml', () => {
    assert.equal(defaultFileName('etcd'), 'etcd.yaml')
  })
})

describe('checkFileName', () => {
  const refused = (fileName: string): ServiceError => {
    try {
      checkFileName(fileName)
    } catch (err) {
      assert.ok(err instanceof ServiceError)
      return err
    }
    assert.fail(`accepted ${JSON.stringify(fileName)}`)
  }

  it('accepts plain names, whatever the extension', () => {
    for (const ok of ['etcd.yaml', 'kube-apiserver.json', 'pod', 'x.yaml.bak', 'é.yaml', 'a'.repeat(255)]) checkFileName(ok)
  })

  it('refuses names that leave the directory, hide from the kubelet or cannot be shown', () => {
    for (const bad of ['', '.', '..', '../x.yaml', 'a/b.yaml', '/etc/passwd', 'a\\b.yaml', '.x.yaml', '.hidden', 'x\u0000.yaml', 'x\n.yaml', 'x\u001b[31m.yaml', 'x\u007f', 'x\u0085', 'a'.repeat(256), 'é'.repeat(128), 'x\ud800.yaml']) {
      const err = refused(bad)
      assert.equal(err.code, 'VALIDATION_FAILED')
      assert.deepEqual(err.field, ['fileName'])
    }
  })

  it('explains why a dotfile is refused', () => {
    assert.match(refused('.x.yaml').message, /kubelet ignores dotfiles/)
    assert.match(refused('é'.repeat(128)).message, /256 bytes.*255/)
  })
})

describe('isStrayFileName', () => {
  it('recognises backup and editor leftovers', () => {
    for (const stray of ['kube-apiserver.yaml.bak', 'x.yaml.orig', 'x.old', 'x.rej', 'x.yaml~', 'x.yaml.swp', 'x.swo', 'x.tmp', 'x.save', 'x.yaml.dpkg-old', 'x.dpkg-dist', 'x.rpmnew', 'x.rpmsave', '4913', '#x.yaml#', 'X.BAK']) {
      assert.ok(isStrayFileName(stray), stray)
    }
  })

  it('leaves manifests alone', () => {
    for (const ok of ['etcd.yaml', 'kube-apiserver.json', 'pod', 'backup.yaml', '49130', '#', 'x.yaml#', 'bak']) assert.ok(!isStrayFileName(ok), ok)
  })
})
