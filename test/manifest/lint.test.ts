import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sha256Hex } from '../../src/manifest/hash.ts'
import { lintManifestDir } from '../../src/manifest/lint.ts'
import { MAX_MANIFEST_BYTES } from '../../src/manifest/parse.ts'
import { type DirEntry, type Finding } from '../../src/manifest/types.ts'
import { etcdYaml, kubeApiserverYaml, validPodYaml } from './fixtures.ts'

const file = (name: string, content: string | Uint8Array): DirEntry => {
  const bytes = typeof content === 'string' ? new Uint8Array(Buffer.from(content, 'utf8')) : content
  return { name, kind: 'file', bytes, size: bytes.byteLength }
}
const dir = (name: string): DirEntry => ({ name, kind: 'directory', size: 4096 })

const codes = (findings: Finding[]): string[] => findings.map((f) => `${f.code} ${f.fileName}`)
const podFiles = (entries: DirEntry[]): string[] => lintManifestDir(entries, 'cp-1').pods.map((p) => p.fileName)

describe('lintManifestDir: a healthy directory', () => {
  it('lists the kubeadm pods with their exact text and hash, and finds nothing', () => {
    const result = lintManifestDir([file('kube-apiserver.yaml', kubeApiserverYaml), file('etcd.yaml', etcdYaml)], 'cp-1')
    assert.deepEqual(result.findings, [])
    assert.deepEqual(result.pods, [
      { fileName: 'etcd.yaml', namespace: 'kube-system', name: 'etcd', text: etcdYaml, hash: sha256Hex(etcdYaml) },
      { fileName: 'kube-apiserver.yaml', namespace: 'kube-system', name: 'kube-apiserver', text: kubeApiserverYaml, hash: sha256Hex(kubeApiserverYaml) },
    ])
  })

  it('ignores dotfiles and dot-directories, as the kubelet does', () => {
    const result = lintManifestDir(
      [file('.kube-apiserver.yaml.swp', 'junk'), file('.staticpod-api.tmp', validPodYaml('tmp')), dir('.git'), file('etcd.yaml', etcdYaml)],
      'cp-1',
    )
    assert.deepEqual(result.findings, [])
    assert.deepEqual(result.pods.map((p) => p.name), ['etcd'])
  })

  it('reads JSON manifests and defaults the namespace', () => {
    const json = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'a', image: 'b' }] } })
    const { pods, findings } = lintManifestDir([file('web.json', json)], 'cp-1')
    assert.deepEqual(findings, [])
    assert.equal(pods[0]!.namespace, 'default')
  })

  it('is deterministic whatever the input order', () => {
    const entries = [file('b.yaml', validPodYaml('b')), file('a.yaml', validPodYaml('a')), file('a.yaml.bak', validPodYaml('a')), dir('old'), file('c', 'x: [')]
    const expected = lintManifestDir(entries, 'n')
    assert.deepEqual(lintManifestDir([...entries].reverse(), 'n'), expected)
    assert.deepEqual(lintManifestDir([entries[2]!, entries[4]!, entries[0]!, entries[3]!, entries[1]!], 'n'), expected)
  })
})

describe('lintManifestDir: findings', () => {
  it('SUBDIRECTORY for a directory; UNPARSEABLE_FILE for sockets, FIFOs and dangling links', () => {
    const { findings, pods } = lintManifestDir([dir('backup'), { name: 'kubelet.sock', kind: 'other', size: 0 }], 'n')
    assert.deepEqual(codes(findings), ['SUBDIRECTORY backup', 'UNPARSEABLE_FILE kubelet.sock'])
    assert.match(findings[0]!.message, /does not look inside it/)
    assert.deepEqual(pods, [])
  })

  it('UNPARSEABLE_FILE, with the reason, for what the kubelet cannot read', () => {
    const entries = [
      file('syntax.yaml', 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n'),
      file('latin1.yaml', Uint8Array.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a])),
      file('empty.yaml', ''),
      file('list.yaml', '- a\n- b\n'),
      file('flow.json', '{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: a, image: b}]}}'),
      { name: 'huge.yaml', kind: 'file', size: MAX_MANIFEST_BYTES + 1 } satisfies DirEntry,
      file('bomb.yaml', `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`),
    ]
    const { findings, pods } = lintManifestDir(entries, 'n')
    assert.deepEqual(pods, [])
    const byFile = Object.fromEntries(findings.map((f) => [f.fileName, f]))
    assert.ok(findings.every((f) => f.code === 'UNPARSEABLE_FILE'), JSON.stringify(findings))
    assert.equal(findings.length, 7)
    assert.match(byFile['flow.json']!.message, /reads it as JSON, but it is not valid JSON/)
    assert.match(byFile['syntax.yaml']!.message, /YAML syntax error.*line \d+/)
    assert.match(byFile['latin1.yaml']!.message, /not valid UTF-8/)
    assert.match(byFile['empty.yaml']!.message, /empty/)
    assert.match(byFile['list.yaml']!.message, /top level is a list/)
    assert.match(byFile['huge.yaml']!.message, /10485761 bytes.*refuses files over 10485760 bytes/)
    assert.match(byFile['bomb.yaml']!.message, /aliases/)
    assert.match(byFile['syntax.yaml']!.message, /^syntax\.yaml: YAML syntax error.*The kubelet runs nothing from this file\.$/)
  })

  it('UNPARSEABLE_FILE for a Pod the kubelet rejects: no name, no containers, too long a mirror name', () => {
    const longName = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(58)}`
    const entries = [
      file('noname.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {}\nspec:\n  containers: [{name: a, image: b}]\n'),
      file('nocontainers.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n'),
      file('long.yaml', validPodYaml(longName)),
    ]
    const { findings, pods } = lintManifestDir(entries, 'local')
    assert.deepEqual(pods, [])
    assert.deepEqual(codes(findings), ['UNPARSEABLE_FILE long.yaml', 'UNPARSEABLE_FILE nocontainers.yaml', 'UNPARSEABLE_FILE noname.yaml'])
    assert.match(findings[0]!.message, /256 characters long/)
    assert.match(findings[1]!.message, /spec\.containers is missing/)
    assert.match(findings[2]!.message, /metadata\.name is required/)
  })

  it('NOT_A_POD for a Deployment, a PodList, or a Pod of another apiVersion', () => {
    const entries = [
      file('deploy.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n'),
      file('list.yaml', 'apiVersion: v1\nkind: PodList\nitems: []\n'),
      file('v2.yaml', validPodYaml().replace('apiVersion: v1', 'apiVersion: v2')),
    ]
    const { findings } = lintManifestDir(entries, 'n')
    assert.deepEqual(codes(findings), ['NOT_A_POD deploy.yaml', 'NOT_A_POD list.yaml', 'NOT_A_POD v2.yaml'])
    assert.match(findings[0]!.message, /holds a Deployment \(apps\/v1\), not a v1 Pod/)
  })

  it('API_REFERENCE_FORBIDDEN, with the pod still listed (the kubelet runs it)', () => {
    const withSecret = validPodYaml('web', '  serviceAccountName: x\n  volumes:\n  - name: s\n    secret: {secretName: s}\n')
    const { findings, pods } = lintManifestDir([file('web.yaml', withSecret)], 'n')
    assert.deepEqual(codes(findings), ['API_REFERENCE_FORBIDDEN web.yaml'])
    assert.match(findings[0]!.message, /spec\.serviceAccountName, spec\.volumes\.0\.secret/)
    assert.deepEqual(pods.map((p) => p.name), ['web'])
  })

  it('STRAY_FILE for backup and editor leftovers, whether or not they hold a pod', () => {
    const names = ['a.bak', 'a.orig', 'a.old', 'a.rej', 'a~', 'a.swp', 'a.swo', 'a.tmp', 'a.save', 'a.dpkg-old', 'a.rpmnew', 'a.rpmsave', '4913', '#a#']
    const { findings } = lintManifestDir(names.map((n, i) => file(n, validPodYaml(`p${i}`))), 'n')
    assert.deepEqual(findings.map((f) => f.code), names.map(() => 'STRAY_FILE'))
    assert.match(findings[0]!.message, /backup or editor leftover/)

    const junk = lintManifestDir([file('4913', '')], 'n')
    assert.deepEqual(codes(junk.findings), ['STRAY_FILE 4913', 'UNPARSEABLE_FILE 4913'])
  })

  it('DUPLICATE_POD: the LAST file in name order wins, so a backup shadows the real manifest', () => {
    const edited = kubeApiserverYaml.replace('v1.30.2', 'v1.30.3')
    const { findings, pods } = lintManifestDir(
      [file('kube-apiserver.yaml', edited), file('kube-apiserver.yaml.bak', kubeApiserverYaml), file('etcd.yaml', etcdYaml)],
      'cp-1',
    )
    assert.deepEqual(pods.map((p) => p.fileName), ['etcd.yaml', 'kube-apiserver.yaml.bak'])
    assert.equal(pods[1]!.hash, sha256Hex(kubeApiserverYaml))
    assert.deepEqual(codes(findings), ['STRAY_FILE kube-apiserver.yaml.bak', 'DUPLICATE_POD kube-apiserver.yaml'])
    assert.match(findings[1]!.message, /kubelet runs the one in kube-apiserver\.yaml\.bak.*ignores kube-apiserver\.yaml/)
  })

  it('DUPLICATE_POD for each loser when three files define the same pod', () => {
    const entries = ['c.yaml', 'a.yaml', 'b.json'].map((n) => file(n, validPodYaml('web')))
    const { findings, pods } = lintManifestDir(entries, 'n')
    assert.deepEqual(pods.map((p) => p.fileName), ['c.yaml'])
    assert.deepEqual(codes(findings), ['DUPLICATE_POD a.yaml', 'DUPLICATE_POD b.json'])
  })

  it('same name in different namespaces is no duplicate; namespace defaults count', () => {
    const entries = [
      file('a.yaml', validPodYaml('web')),
      file('b.yaml', validPodYaml('web').replace('namespace: default', 'namespace: other')),
      file('c.yaml', validPodYaml('web').replace('  namespace: default\n', '')),
    ]
    const { findings, pods } = lintManifestDir(entries, 'n')
    assert.deepEqual(pods.map((p) => p.fileName), ['b.yaml', 'c.yaml'])
    assert.deepEqual(codes(findings), ['DUPLICATE_POD a.yaml'])
  })

  it('orders names by UTF-8 bytes, like Go', () => {
    // U+FF21 sorts before U+1F600 in UTF-8, after it in UTF-16.
    const { pods } = lintManifestDir([file('a\uff21.yaml', validPodYaml('web')), file('a\u{1f600}.yaml', validPodYaml('web'))], 'n')
    assert.deepEqual(pods.map((p) => p.fileName), ['a\u{1f600}.yaml'])
  })

  it('several documents: the kubelet runs the first; reported, and the pod listed', () => {
    const { findings, pods } = lintManifestDir([file('two.yaml', `${validPodYaml('one')}---\n${validPodYaml('two')}`)], 'n')
    assert.deepEqual(pods.map((p) => p.name), ['one'])
    assert.deepEqual(codes(findings), ['UNPARSEABLE_FILE two.yaml'])
    assert.match(findings[0]!.message, /runs the Pod default\/one from the first and silently ignores the other 1/)
  })

  it('duplicate keys: the later one wins, as in the kubelet', () => {
    const { findings, pods } = lintManifestDir([file('dup.yaml', validPodYaml('first').replace('  namespace: default\n', '  namespace: default\n  name: second\n'))], 'n')
    assert.deepEqual(findings, [])
    assert.deepEqual(pods.map((p) => p.name), ['second'])
  })

  it('an empty directory is fine', () => {
    assert.deepEqual(lintManifestDir([], 'n'), { pods: [], findings: [] })
    assert.deepEqual(podFiles([]), [])
  })
})

describe('lintManifestDir: the same bytes on many nodes (parses are shared by content hash)', () => {
  it('still judges each node and file on its own: a name that fits one node name is too long for another', () => {
    // The mirror pod's name is <pod name>-<node name>, at most 253 characters.
    const longName = 'p'.repeat(230)
    const bytes = validPodYaml(longName)
    const shortNode = lintManifestDir([file('a.yaml', bytes)], 'cp-1')
    const longNode = lintManifestDir([file('b.yaml', bytes)], 'n'.repeat(40))
    assert.deepEqual(shortNode.findings, [])
    assert.deepEqual(shortNode.pods.map((p) => p.fileName), ['a.yaml'])
    assert.deepEqual(codes(longNode.findings), ['UNPARSEABLE_FILE b.yaml'])
    assert.deepEqual(longNode.pods, [])
  })

  it('gives every caller the same answer, per file name', () => {
    const first = lintManifestDir([file('etcd.yaml', etcdYaml)], 'cp-1')
    const second = lintManifestDir([file('etcd.yaml', etcdYaml)], 'cp-2')
    assert.deepEqual(second, first)
    const again = lintManifestDir([file('etcd.yaml', etcdYaml), file('etcd-copy.yaml', etcdYaml)], 'cp-1')
    // etcd-copy.yaml sorts first ('-' < '.'), so etcd.yaml is the one the kubelet runs.
    assert.deepEqual(codes(again.findings), ['DUPLICATE_POD etcd-copy.yaml'])
    assert.deepEqual(again.pods.map((p) => p.fileName), ['etcd.yaml'])
  })
})
