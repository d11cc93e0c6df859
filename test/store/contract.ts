// The behaviour every Store implementation must have, written against the
// interface alone so that the SQLite and DynamoDB stores run the same suite:
//
//   storeContract('sqlite', async () => ({ store, reopen, cleanup }))
//
// makeStore is called before every test and must return an empty store.
// reopen, when given, closes nothing itself: the suite closes `store` first,
// then calls reopen for a new instance over the same data. cleanup must close
// whatever is still open (close is idempotent) and remove what makeStore made.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { isServiceError } from '../../src/errors.ts'
import type { ErrorCode } from '../../src/errors.ts'
import { podKeyString } from '../../src/domain.ts'
import type { AuditEvent, JumpHostRecord, LocalNodeRecord, NewAuditEvent, NewRevision, NodeObservation, PodKey, RevisionRecord, SshNodeRecord, SshTarget } from '../../src/domain.ts'
import type { Store } from '../../src/store/store.ts'

export interface StoreUnderTest {
  store: Store
  reopen: () => Promise<Store>
  cleanup: () => Promise<void>
}

const T0 = Date.parse('2024-05-01T12:00:00.000Z')
const instant = (offsetMs: number): string => new Date(T0 + offsetMs).toISOString()

export function nodeRecord(name: string, overrides: Partial<Omit<SshNodeRecord, 'ssh'>> & { ssh?: Partial<SshTarget> } = {}): SshNodeRecord {
  const { ssh, ...rest } = overrides
  return {
    name,
    kind: 'ssh',
    ssh: {
      host: `${name}.example.internal`,
      port: 22,
      user: 'root',
      privilege: 'NONE',
      sftpServer: null,
      via: null,
      hostKeyFingerprint: 'SHA256:Qm9ndXNGaW5nZXJwcmludEZvclRlc3RzT25seQ',
      observedHostKeyFingerprint: null,
      ...ssh,
    },
    staticPodPath: '/etc/kubernetes/manifests',
    staticPodPathFrom: 'given',
    labels: [
      { key: 'node-role.kubernetes.io/control-plane', value: '' },
      { key: 'zone', value: 'eu-west-1a' },
    ],
    createdAt: instant(0),
    updatedAt: instant(0),
    ...rest,
  }
}

function jumpHostRecord(name: string, overrides: Partial<JumpHostRecord> = {}): JumpHostRecord {
  return {
    name,
    host: `${name}.bastion.example.internal`,
    port: 22,
    user: 'jump',
    hostKeyFingerprint: 'SHA256:SnVtcEhvc3RGaW5nZXJwcmludEZvclRlc3Rz',
    observedHostKeyFingerprint: null,
    via: null,
    ...overrides,
  }
}

function localNodeRecord(name: string, overrides: Partial<LocalNodeRecord> = {}): LocalNodeRecord {
  return { name, kind: 'local', staticPodPath: '/srv/manifests', staticPodPathFrom: 'given', labels: [], createdAt: instant(0), updatedAt: instant(0), ...overrides }
}

export function newRevision(key: PodKey, overrides: Partial<NewRevision> = {}): NewRevision {
  const manifest = overrides.manifest ?? `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${key.name}\n  namespace: ${key.namespace}\n`
  return {
    ...key,
    hash: `sha256:${manifest.length.toString(16)}`,
    manifest,
    fileName: `${key.name}.yaml`,
    action: 'UPDATE',
    actor: 'alice',
    recordedAt: instant(1000),
    ...overrides,
  }
}

export function nodeObservation(node: string, overrides: Partial<NodeObservation> = {}): NodeObservation {
  return {
    node,
    observedAt: instant(5000),
    pods: [
      {
        namespace: 'kube-system',
        name: 'kube-apiserver',
        fileName: 'kube-apiserver.yaml',
        hash: 'sha256:abc',
        revision: 3,
        managed: true,
        manifest: 'apiVersion: v1\r\nkind: Pod\r\n',
      },
    ],
    findings: [{ code: 'STRAY_FILE', fileName: 'kube-apiserver.yaml.bak', message: 'the kubelet runs this file too' }],
    agent: { reachable: true, lastContactAt: instant(5000), lastError: null, latencyMs: 12.5 },
    kubelet: { healthy: true, checkedAt: instant(5000), message: null },
    kubeletUnavailableReason: null,
    runtime: [
      {
        namespace: 'kube-system',
        name: 'kube-apiserver',
        state: 'SANDBOX_READY',
        containers: [{ name: 'kube-apiserver', image: null, state: 'CONTAINER_RUNNING', ready: null, restartCount: 2 }],
        observedAt: instant(5000),
      },
    ],
    runtimeUnavailableReason: null,
    ...overrides,
  }
}

export function auditEvent(at: string, overrides: Partial<NewAuditEvent> = {}): NewAuditEvent {
  return {
    at,
    actor: 'alice',
    action: 'updateStaticPod',
    node: 'cp-1',
    target: 'kube-system/kube-apiserver',
    fromHash: 'sha256:old',
    toHash: 'sha256:new',
    result: 'OK',
    message: null,
    dryRun: false,
    ...overrides,
  }
}

function isCode(code: ErrorCode): (err: unknown) => boolean {
  return (err) => isServiceError(err) && err.code === code
}

/** Runs `fns` `parallelism` at a time (a backend may throttle thousands at once). */
async function inBatches<T>(fns: Array<() => Promise<T>>, parallelism = 50): Promise<T[]> {
  const results: T[] = []
  for (let i = 0; i < fns.length; i += parallelism) {
    results.push(...(await Promise.all(fns.slice(i, i + parallelism).map((fn) => fn()))))
  }
  return results
}

const revisionNumbers = (records: RevisionRecord[] | undefined): number[] => (records ?? []).map((r) => r.revision)

export function storeContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`Store contract: ${name}`, () => {
    let harness: StoreUnderTest
    let store: Store

    beforeEach(async () => {
      harness = await makeStore()
      store = harness.store
    })
    afterEach(async () => {
      await harness.cleanup()
    })

    it('ping resolves', async () => {
      await store.ping()
    })

    describe('nodes', () => {
      it('createNode then getNode and listNodes return the record as given', async () => {
        const cp1 = nodeRecord('cp-1')
        const worker = localNodeRecord('worker-1')
        const discovering = nodeRecord('cp-2', { staticPodPathFrom: 'discover', ssh: { host: '127.0.0.1', port: 2222, hostKeyFingerprint: null, observedHostKeyFingerprint: 'SHA256:c2Vlbg' } })
        await store.createNode(cp1)
        await store.createNode(worker)
        await store.createNode(discovering)
        assert.deepEqual(await store.getNode('cp-1'), cp1)
        assert.deepEqual(await store.getNode('worker-1'), worker)
        assert.deepEqual(await store.getNode('cp-2'), discovering)
        const listed = await store.listNodes()
        assert.deepEqual(
          [...listed].sort((a, b) => a.name.localeCompare(b.name)),
          [cp1, discovering, worker],
        )
      })

      it('getNode of an unknown name is null; listNodes of an empty store is empty', async () => {
        assert.equal(await store.getNode('nope'), null)
        assert.deepEqual(await store.listNodes(), [])
      })

      it('keeps label order and odd label text', async () => {
        const labels = [
          { key: 'z', value: '1' },
          { key: 'a', value: 'ünïcødé 😀' },
          { key: 'm', value: 'line\nbreak "quoted"' },
        ]
        await store.createNode(nodeRecord('cp-1', { labels }))
        assert.deepEqual((await store.getNode('cp-1'))?.labels, labels)
      })

      it('createNode of a taken name fails with ALREADY_EXISTS and changes nothing', async () => {
        const original = nodeRecord('cp-1')
        await store.createNode(original)
        await assert.rejects(store.createNode(nodeRecord('cp-1', { ssh: { host: 'elsewhere' } })), isCode('ALREADY_EXISTS'))
        assert.deepEqual(await store.getNode('cp-1'), original)
        assert.equal((await store.listNodes()).length, 1)
      })

      it('updateNode replaces every field an admin sets of an existing node', async () => {
        await store.createNode(nodeRecord('cp-1'))
        const updated = nodeRecord('cp-1', {
          ssh: { host: '10.0.0.9', port: 2022, user: 'ops', hostKeyFingerprint: null },
          staticPodPath: '/var/lib/kubelet/manifests',
          labels: [{ key: 'zone', value: 'b' }],
          updatedAt: instant(60_000),
        })
        await store.updateNode(updated)
        assert.deepEqual(await store.getNode('cp-1'), updated)
        const local = localNodeRecord('cp-1', { staticPodPath: '/srv/other', updatedAt: instant(90_000) })
        await store.updateNode(local)
        assert.deepEqual(await store.getNode('cp-1'), local)
      })

      it('recordNodeFacts keeps the presented host key and a discovered path beside what an admin set', async () => {
        await store.createNode(nodeRecord('cp-1', { staticPodPathFrom: 'discover' }))
        await store.recordNodeFacts('cp-1', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        await store.recordNodeFacts('cp-1', { discoveredStaticPodPath: '/var/lib/kubelet/static' })
        const learnt = await store.getNode('cp-1')
        assert.equal(learnt?.kind === 'ssh' && learnt.ssh.observedHostKeyFingerprint, 'SHA256:c2Vlbg')
        assert.equal(learnt?.staticPodPath, '/var/lib/kubelet/static')
        assert.equal(learnt?.staticPodPathFrom, 'discovered')
        // updatedAt says when an admin last changed the node; facts are not that.
        assert.equal(learnt?.updatedAt, instant(0))

        // An admin's update, from a record read before the facts, does not undo them ...
        await store.updateNode(nodeRecord('cp-1', { staticPodPathFrom: 'discover', labels: [{ key: 'zone', value: 'c' }], updatedAt: instant(60_000) }))
        const kept = await store.getNode('cp-1')
        assert.equal(kept?.kind === 'ssh' && kept.ssh.observedHostKeyFingerprint, 'SHA256:c2Vlbg')
        assert.equal(kept?.staticPodPath, '/var/lib/kubelet/static')
        assert.deepEqual(kept?.labels, [{ key: 'zone', value: 'c' }])

        // ... and once an admin gives a path, no discovery replaces it.
        await store.updateNode(nodeRecord('cp-1', { staticPodPath: '/etc/given', updatedAt: instant(90_000) }))
        await store.recordNodeFacts('cp-1', { discoveredStaticPodPath: '/somewhere/else' })
        const given = await store.getNode('cp-1')
        assert.equal(given?.staticPodPath, '/etc/given')
        assert.equal(given?.staticPodPathFrom, 'given')
      })

      it('pinNodeHostKey pins only an unpinned SSH node, and says what the pin is', async () => {
        await store.createNode(nodeRecord('cp-1', { ssh: { hostKeyFingerprint: null }, labels: [] }))
        await store.createNode(localNodeRecord('here'))
        assert.equal(await store.pinNodeHostKey('cp-1', 'SHA256:Zmlyc3Q', instant(5_000)), 'SHA256:Zmlyc3Q')
        const pinned = await store.getNode('cp-1')
        assert.equal(pinned?.kind === 'ssh' && pinned.ssh.hostKeyFingerprint, 'SHA256:Zmlyc3Q')
        assert.equal(pinned?.updatedAt, instant(5_000))
        assert.equal(await store.pinNodeHostKey('cp-1', 'SHA256:c2Vjb25k', instant(9_000)), 'SHA256:Zmlyc3Q', 'a pin is never replaced')
        assert.equal((await store.getNode('cp-1'))?.updatedAt, instant(5_000))
        assert.equal(await store.pinNodeHostKey('here', 'SHA256:Zmlyc3Q', instant(9_000)), null)
        assert.equal(await store.pinNodeHostKey('ghost', 'SHA256:Zmlyc3Q', instant(9_000)), null)
        assert.deepEqual(await store.getNode('here'), localNodeRecord('here'))
      })

      it('recordNodeFacts of an unknown or local node changes nothing', async () => {
        await store.createNode(localNodeRecord('here'))
        await store.recordNodeFacts('ghost', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        await store.recordNodeFacts('here', { discoveredStaticPodPath: '/elsewhere' })
        assert.equal(await store.getNode('ghost'), null)
        assert.deepEqual(await store.getNode('here'), localNodeRecord('here'))
      })

      it('updateNode of an unknown node fails with NOT_FOUND and creates nothing', async () => {
        await assert.rejects(store.updateNode(nodeRecord('ghost')), isCode('NOT_FOUND'))
        assert.equal(await store.getNode('ghost'), null)
        assert.deepEqual(await store.listNodes(), [])
      })

      it('deleteNode of an unknown node returns false', async () => {
        assert.equal(await store.deleteNode('ghost'), false)
      })

      it('deleteNode removes the node, its revisions and observation, keeps the audit trail and other nodes', async () => {
        await store.createNode(nodeRecord('cp-1'))
        await store.createNode(nodeRecord('cp-2'))
        const gone: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'etcd' }
        const kept: PodKey = { node: 'cp-2', namespace: 'kube-system', name: 'etcd' }
        for (let i = 0; i < 3; i++) {
          await store.appendRevision(newRevision(gone))
          await store.appendRevision(newRevision(kept))
        }
        await store.putObservation(nodeObservation('cp-1'))
        await store.putObservation(nodeObservation('cp-2'))
        const event = await store.appendAudit(auditEvent(instant(0), { node: 'cp-1', action: 'registerNode' }))

        assert.equal(await store.deleteNode('cp-1'), true)

        assert.equal(await store.getNode('cp-1'), null)
        assert.equal(await store.getRevision(gone, 1), null)
        assert.equal((await store.latestRevisions([gone])).size, 0)
        assert.equal((await store.listRevisions([gone], 10)).size, 0)
        assert.equal((await store.getObservations(['cp-1'])).size, 0)
        assert.deepEqual(await store.listAudit({ node: 'cp-1', limit: 10 }), [event])

        assert.notEqual(await store.getNode('cp-2'), null)
        assert.deepEqual(revisionNumbers((await store.listRevisions([kept], 10)).get(podKeyString(kept))), [3, 2, 1])
        assert.equal((await store.getObservations(['cp-2'])).size, 1)

        assert.equal(await store.deleteNode('cp-1'), false, 'a second delete finds nothing')
        // A node registered again under the same name starts a new history.
        await store.createNode(nodeRecord('cp-1'))
        assert.equal((await store.appendRevision(newRevision(gone))).revision, 1)
      })
    })

    describe('jump hosts', () => {
      it('putJumpHost creates; getJumpHost and listJumpHosts (by name) return the record as given', async () => {
        const edge = jumpHostRecord('edge', { port: 2222, hostKeyFingerprint: null })
        const inner = jumpHostRecord('inner', { host: '10.1.2.3', user: 'ops', via: 'edge' })
        assert.deepEqual(await store.putJumpHost(inner), inner)
        assert.deepEqual(await store.putJumpHost(edge), edge)
        assert.deepEqual(await store.getJumpHost('edge'), edge)
        assert.deepEqual(await store.getJumpHost('inner'), inner)
        assert.deepEqual(await store.listJumpHosts(), [edge, inner])
      })

      it('listJumpHosts returns every one of many (paged backends page through), by name', async () => {
        const names = Array.from({ length: 7 }, (_, i) => `bastion-${i}`)
        for (const name of [...names].reverse()) await store.putJumpHost(jumpHostRecord(name))
        assert.deepEqual((await store.listJumpHosts()).map((j) => j.name), names)
      })

      it('an empty store has none; getJumpHost of an unknown name is null', async () => {
        assert.deepEqual(await store.listJumpHosts(), [])
        assert.equal(await store.getJumpHost('nope'), null)
      })

      it('putJumpHost of an existing name replaces what an admin sets and keeps the observed key', async () => {
        await store.putJumpHost(jumpHostRecord('edge', { hostKeyFingerprint: null }))
        await store.recordJumpHostFacts('edge', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        // An admin's put, from a record read before the fact, does not undo it ...
        const replaced = jumpHostRecord('edge', { host: '192.0.2.7', port: 2022, user: 'bastion', hostKeyFingerprint: 'SHA256:cGlubmVk', via: 'outer' })
        const stored = await store.putJumpHost(replaced)
        assert.deepEqual(stored, { ...replaced, observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        assert.deepEqual(await store.getJumpHost('edge'), stored)
        // ... and one back to "direct, unpinned" clears those fields.
        const direct = jumpHostRecord('edge', { hostKeyFingerprint: null, via: null })
        assert.deepEqual(await store.putJumpHost(direct), { ...direct, observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        assert.equal((await store.listJumpHosts()).length, 1)
      })

      it('recordJumpHostFacts changes only the observed key, and nothing for an unknown name', async () => {
        const edge = jumpHostRecord('edge')
        await store.putJumpHost(edge)
        await store.recordJumpHostFacts('edge', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        await store.recordJumpHostFacts('edge', { observedHostKeyFingerprint: 'SHA256:bmV3ZXI' })
        assert.deepEqual(await store.getJumpHost('edge'), { ...edge, observedHostKeyFingerprint: 'SHA256:bmV3ZXI' })
        await store.recordJumpHostFacts('ghost', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        assert.equal(await store.getJumpHost('ghost'), null)
        assert.deepEqual((await store.listJumpHosts()).map((j) => j.name), ['edge'])
      })

      it('deleteJumpHost removes only that jump host; false when there is none', async () => {
        await store.putJumpHost(jumpHostRecord('edge'))
        await store.putJumpHost(jumpHostRecord('inner', { via: 'edge' }))
        assert.equal(await store.deleteJumpHost('edge'), true)
        assert.equal(await store.getJumpHost('edge'), null)
        assert.deepEqual((await store.listJumpHosts()).map((j) => j.name), ['inner'])
        assert.equal(await store.deleteJumpHost('edge'), false, 'a second delete finds nothing')
        assert.equal(await store.deleteJumpHost('ghost'), false)
      })

      it('jump hosts and nodes are apart: the same name can be both, and neither list, fact nor delete reaches the other', async () => {
        const node = nodeRecord('shared', { ssh: { via: 'shared', observedHostKeyFingerprint: null } })
        const jump = jumpHostRecord('shared')
        await store.createNode(node)
        await store.putJumpHost(jump)
        assert.deepEqual(await store.listNodes(), [node])
        assert.deepEqual(await store.listJumpHosts(), [jump])
        await store.recordJumpHostFacts('shared', { observedHostKeyFingerprint: 'SHA256:anVtcA' })
        assert.deepEqual(await store.getNode('shared'), node)
        await store.recordNodeFacts('shared', { observedHostKeyFingerprint: 'SHA256:bm9kZQ' })
        assert.equal((await store.getJumpHost('shared'))?.observedHostKeyFingerprint, 'SHA256:anVtcA')
        assert.equal(await store.deleteNode('shared'), true)
        assert.notEqual(await store.getJumpHost('shared'), null)
        await store.createNode(node)
        assert.equal(await store.deleteJumpHost('shared'), true)
        assert.deepEqual(await store.getNode('shared'), node)
      })

      it('keeps the record across a reopen', async () => {
        const stored = await store.putJumpHost(jumpHostRecord('edge', { via: 'outer' }))
        await store.recordJumpHostFacts('edge', { observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
        await store.close()
        store = await harness.reopen()
        assert.deepEqual(await store.getJumpHost('edge'), { ...stored, observedHostKeyFingerprint: 'SHA256:c2Vlbg' })
      })
    })

    describe('revisions', () => {
      const apiserver: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'kube-apiserver' }

      it('numbers revisions 1, 2, 3 per key and returns the record as stored', async () => {
        const first = newRevision(apiserver, { action: 'OBSERVED', actor: null })
        const appended = await store.appendRevision(first)
        assert.deepEqual(appended, { ...first, revision: 1 })
        assert.equal((await store.appendRevision(newRevision(apiserver, { action: 'UPDATE' }))).revision, 2)
        assert.equal((await store.appendRevision(newRevision(apiserver, { action: 'ROLLBACK' }))).revision, 3)
        assert.deepEqual(await store.getRevision(apiserver, 1), appended)
        assert.equal((await store.getRevision(apiserver, 3))?.action, 'ROLLBACK')
      })

      it('numbers each key independently (node, namespace and name all count)', async () => {
        const keys: PodKey[] = [
          apiserver,
          { ...apiserver, node: 'cp-2' },
          { ...apiserver, namespace: 'default' },
          { ...apiserver, name: 'etcd' },
        ]
        // Interleaved appends; key i gets counts[i] revisions.
        const counts = [3, 3, 2, 1]
        const appended = new Map<string, number[]>()
        for (let round = 1; round <= 3; round++) {
          for (const [i, key] of keys.entries()) {
            if (round > counts[i]!) continue
            const record = await store.appendRevision(newRevision(key))
            appended.set(podKeyString(key), [...(appended.get(podKeyString(key)) ?? []), record.revision])
          }
        }
        assert.deepEqual(
          keys.map((k) => appended.get(podKeyString(k))),
          [[1, 2, 3], [1, 2, 3], [1, 2], [1]],
        )
        const latest = await store.latestRevisions(keys)
        assert.deepEqual(
          keys.map((k) => latest.get(podKeyString(k))?.revision),
          [3, 3, 2, 1],
        )
      })

      it('getRevision of an unknown number or key is null', async () => {
        await store.appendRevision(newRevision(apiserver))
        assert.equal(await store.getRevision(apiserver, 2), null)
        assert.equal(await store.getRevision(apiserver, 0), null)
        assert.equal(await store.getRevision({ ...apiserver, name: 'etcd' }, 1), null)
      })

      it('expectedLatest: 0 means none yet; a stale number fails with CONFLICT and appends nothing', async () => {
        const other: PodKey = { ...apiserver, name: 'etcd' }
        await store.appendRevision(newRevision(other))
        assert.equal((await store.appendRevision(newRevision(apiserver), 0)).revision, 1, 'other keys do not count')
        await assert.rejects(store.appendRevision(newRevision(apiserver), 0), isCode('CONFLICT'))
        assert.equal((await store.appendRevision(newRevision(apiserver), 1)).revision, 2)
        await assert.rejects(store.appendRevision(newRevision(apiserver), 1), isCode('CONFLICT'))
        await assert.rejects(store.appendRevision(newRevision(apiserver), 3), isCode('CONFLICT'))
        assert.equal((await store.latestRevisions([apiserver])).get(podKeyString(apiserver))?.revision, 2)
        assert.equal(await store.getRevision(apiserver, 3), null)
        assert.equal((await store.appendRevision(newRevision(apiserver), 2)).revision, 3)
      })

      it('20 concurrent appends to one key get 20 distinct consecutive numbers', async () => {
        const appended = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.appendRevision(newRevision(apiserver, { manifest: `n: ${i}\n` }))),
        )
        assert.deepEqual(
          appended.map((r) => r.revision).sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => i + 1),
        )
        // Each number holds the manifest of the append that got it.
        for (const record of appended) {
          assert.equal((await store.getRevision(apiserver, record.revision))?.manifest, record.manifest)
        }
      })

      it('concurrent appends expecting the same latest: exactly one wins, the others get CONFLICT', async () => {
        const outcomes = await Promise.allSettled(
          Array.from({ length: 5 }, () => store.appendRevision(newRevision(apiserver), 0)),
        )
        const won = outcomes.filter((o) => o.status === 'fulfilled')
        const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected')
        assert.equal(won.length, 1)
        for (const o of lost) assert.ok(isCode('CONFLICT')(o.reason), String(o.reason))
        assert.equal((await store.latestRevisions([apiserver])).get(podKeyString(apiserver))?.revision, 1)
      })

      it('keeps the exact bytes of odd manifests', async () => {
        const bigLine = 'x'.repeat(79) + '\n'
        const big =
          'apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    blob: |\n' +
          Array.from({ length: 400 * 1024 / bigLine.length }, (_, i) => `      ${i} ${i % 7 === 0 ? 'ü€😀' : ''}${bigLine}`).join('')
        const manifests: Record<string, string> = {
          crlf: 'apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: crlf\r\n',
          tabs: 'apiVersion: v1\nkind: Pod\nmetadata:\n\tname: tabs\t# tab\n',
          nonAscii: 'metadata:\n  annotations:\n    note: "Grüße, 東京, emoji 😀🚀, zero-width \u200b, BOM-less"\n',
          trailingSpaces: 'kind: Pod   \nmetadata:  \n  name: x \t \n   ',
          noTrailingNewline: 'apiVersion: v1\nkind: Pod',
          leadingBom: '\ufeffapiVersion: v1\n',
          blankLines: '\n\n\r\n\n',
          empty: '',
          big,
        }
        assert.ok(big.length >= 400 * 1024)
        const keys = new Map<string, PodKey>()
        for (const [label, manifest] of Object.entries(manifests)) {
          const key: PodKey = { node: 'cp-1', namespace: 'default', name: `odd-${label.toLowerCase()}` }
          keys.set(label, key)
          await store.appendRevision(newRevision(key, { manifest }))
        }
        const latest = await store.latestRevisions([...keys.values()])
        const listed = await store.listRevisions([...keys.values()], 5)
        for (const [label, manifest] of Object.entries(manifests)) {
          const key = keys.get(label)!
          const expected = Buffer.from(manifest, 'utf8')
          const viaGet = (await store.getRevision(key, 1))?.manifest
          assert.ok(viaGet !== undefined, label)
          assert.ok(Buffer.from(viaGet, 'utf8').equals(expected), `${label} via getRevision`)
          assert.ok(Buffer.from(latest.get(podKeyString(key))!.manifest, 'utf8').equals(expected), `${label} via latestRevisions`)
          assert.ok(Buffer.from(listed.get(podKeyString(key))![0]!.manifest, 'utf8').equals(expected), `${label} via listRevisions`)
        }
      })

      describe('many keys in one call', () => {
        // 1,500 keys asked over 500 nodes; the first 300 have 1 to 4 revisions, the rest none.
        const keys: PodKey[] = Array.from({ length: 1500 }, (_, i) => ({
          node: `node-${String(i % 500).padStart(3, '0')}`,
          namespace: i % 2 === 0 ? 'kube-system' : 'default',
          name: `pod-${i}`,
        }))
        const countOf = (i: number): number => (i < 300 ? 1 + (i % 4) : 0)

        async function seed(): Promise<void> {
          const appends: Array<() => Promise<RevisionRecord>> = []
          for (let round = 1; round <= 4; round++) {
            for (const [i, key] of keys.entries()) {
              if (countOf(i) >= round) appends.push(() => store.appendRevision(newRevision(key, { manifest: `${podKeyString(key)} r${round}\n` })))
            }
            // Rounds run one after the other so that each key's revision numbers match `round`.
            await inBatches(appends.splice(0))
          }
        }

        it('listRevisions returns newest first, at most limit per key, keys without revisions absent', async () => {
          await seed()
          for (const limit of [1, 2, 10]) {
            const byKey = await store.listRevisions(keys, limit)
            assert.equal(byKey.size, 300, `limit ${limit}`)
            for (const [i, key] of keys.entries()) {
              const count = countOf(i)
              const got = byKey.get(podKeyString(key))
              if (count === 0) {
                assert.equal(got, undefined)
                continue
              }
              const expected = Array.from({ length: Math.min(count, limit) }, (_, j) => count - j)
              assert.deepEqual(revisionNumbers(got), expected, `${podKeyString(key)} limit ${limit}`)
              for (const record of got!) {
                assert.equal(record.manifest, `${podKeyString(key)} r${record.revision}\n`)
                assert.deepEqual({ node: record.node, namespace: record.namespace, name: record.name }, key)
              }
            }
          }
        })

        it('latestRevisions returns the newest revision of each key that has one', async () => {
          await seed()
          const latest = await store.latestRevisions(keys)
          assert.equal(latest.size, 300)
          for (const [i, key] of keys.entries()) {
            const record = latest.get(podKeyString(key))
            if (countOf(i) === 0) assert.equal(record, undefined)
            else assert.equal(record?.revision, countOf(i))
          }
        })
      })

      it('a key asked twice is answered once', async () => {
        await store.appendRevision(newRevision(apiserver))
        await store.appendRevision(newRevision(apiserver))
        const listed = await store.listRevisions([apiserver, { ...apiserver }], 10)
        assert.deepEqual(revisionNumbers(listed.get(podKeyString(apiserver))), [2, 1])
        const latest = await store.latestRevisions([apiserver, { ...apiserver }])
        assert.equal(latest.size, 1)
      })

      it('no keys, or limit 0, give an empty map', async () => {
        await store.appendRevision(newRevision(apiserver))
        assert.equal((await store.listRevisions([], 5)).size, 0)
        assert.equal((await store.latestRevisions([])).size, 0)
        assert.equal((await store.listRevisions([apiserver], 0)).size, 0)
      })
    })

    describe('observations', () => {
      it('putObservation then getObservations returns it as given', async () => {
        const obs = nodeObservation('cp-1')
        await store.putObservation(obs)
        const got = await store.getObservations(['cp-1'])
        assert.deepEqual([...got.keys()], ['cp-1'])
        assert.deepEqual(got.get('cp-1'), obs)
      })

      it('keeps an observation with every nullable field null', async () => {
        const obs = nodeObservation('cp-1', {
          observedAt: null,
          pods: [],
          findings: [],
          agent: { reachable: false, lastContactAt: null, lastError: 'connect ECONNREFUSED 10.0.0.1:22', latencyMs: null },
          kubelet: null,
          kubeletUnavailableReason: 'node unreachable',
          runtime: null,
          runtimeUnavailableReason: 'node unreachable',
        })
        await store.putObservation(obs)
        assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), obs)
      })

      it('putObservation replaces the previous one of the node', async () => {
        await store.putObservation(nodeObservation('cp-1'))
        const newer = nodeObservation('cp-1', { observedAt: instant(9000), pods: [] })
        await store.putObservation(newer)
        assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), newer)
      })

      it('answers many nodes in one call; nodes never observed are not in the map', async () => {
        const observed = Array.from({ length: 1200 }, (_, i) => `node-${i}`)
        await inBatches(observed.map((node, i) => () => store.putObservation(nodeObservation(node, { agent: { reachable: true, lastContactAt: null, lastError: null, latencyMs: i } }))))
        const asked = [...observed, ...Array.from({ length: 300 }, (_, i) => `never-${i}`), 'node-0']
        const got = await store.getObservations(asked)
        assert.equal(got.size, 1200)
        for (const [i, node] of observed.entries()) {
          assert.equal(got.get(node)?.node, node)
          assert.equal(got.get(node)?.agent.latencyMs, i)
        }
        assert.equal(got.has('never-0'), false)
        assert.equal((await store.getObservations([])).size, 0)
      })

      it('getObservationsIfChanged: a new version with every put, and the observation only where the caller does not hold that version', async () => {
        // Larger than a DynamoDB item: the chunked path must compare versions too.
        const large = nodeObservation('cp-2', { findings: [{ code: 'STRAY_FILE', fileName: 'x.bak', message: 'ü'.repeat(200_000) }] })
        await store.putObservation(nodeObservation('cp-1'))
        await store.putObservation(large)
        const first = await store.getObservationsIfChanged(['cp-1', 'cp-2', 'never', 'cp-1'], new Map())
        assert.deepEqual([...first.keys()].sort(), ['cp-1', 'cp-2'])
        assert.deepEqual(first.get('cp-1')?.observation, nodeObservation('cp-1'))
        assert.deepEqual(first.get('cp-2')?.observation, large)
        const v1 = first.get('cp-1')?.version
        const v2 = first.get('cp-2')?.version
        assert.ok(typeof v1 === 'string' && typeof v2 === 'string' && v1 !== v2)

        const held = new Map([['cp-1', v1], ['cp-2', v2]])
        assert.deepEqual(await store.getObservationsIfChanged(['cp-1', 'cp-2'], held), new Map([['cp-1', { version: v1, observation: null }], ['cp-2', { version: v2, observation: null }]]))
        const other = await store.getObservationsIfChanged(['cp-1'], new Map([['cp-1', 'a version never stored']]))
        assert.deepEqual(other.get('cp-1'), { version: v1, observation: nodeObservation('cp-1') })

        // The same content stored again (same clock) is still a new version: versions do not come from time or content.
        await store.putObservation(nodeObservation('cp-1'))
        await store.putObservation(large)
        const again = await store.getObservationsIfChanged(['cp-1', 'cp-2'], held)
        assert.notEqual(again.get('cp-1')?.version, v1)
        assert.notEqual(again.get('cp-2')?.version, v2)
        assert.deepEqual(again.get('cp-1')?.observation, nodeObservation('cp-1'))
        assert.deepEqual(again.get('cp-2')?.observation, large)

        await store.createNode(nodeRecord('cp-1'))
        await store.deleteNode('cp-1')
        assert.deepEqual([...(await store.getObservationsIfChanged(['cp-1', 'cp-2'], held)).keys()], ['cp-2'])
        assert.equal((await store.getObservationsIfChanged([], held)).size, 0)
      })
    })

    describe('audit', () => {
      it('appendAudit returns the event with a unique id, and listAudit returns it as stored', async () => {
        const input = auditEvent(instant(0), { message: 'dry run of a bad edit', dryRun: true, result: 'VALIDATION_FAILED' })
        const stored = await store.appendAudit(input)
        assert.equal(typeof stored.id, 'string')
        assert.ok(stored.id.length > 0)
        const { id, ...rest } = stored
        assert.deepEqual(rest, input)
        assert.deepEqual(await store.listAudit({ limit: 10 }), [stored])

        const nullable = await store.appendAudit(auditEvent(instant(1), { node: null, target: null, fromHash: null, toHash: null }))
        assert.notEqual(nullable.id, id)
        assert.deepEqual((await store.listAudit({ limit: 1 }))[0], nullable)
      })

      it('lists newest first by `at`, whatever the order of appends, and honours limit', async () => {
        const offsets = [5, 1, 9, 3, 7, 0, 8, 2, 6, 4]
        for (const offset of offsets) await store.appendAudit(auditEvent(instant(offset * 1000), { message: `t${offset}` }))
        const listed = await store.listAudit({ limit: 100 })
        assert.deepEqual(listed.map((e) => e.message), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((o) => `t${o}`))
        assert.deepEqual((await store.listAudit({ limit: 3 })).map((e) => e.message), ['t9', 't8', 't7'])
        assert.deepEqual(await store.listAudit({ limit: 0 }), [])
      })

      it('events sharing an `at` list newest appended first', async () => {
        const at = instant(0)
        for (let i = 0; i < 5; i++) await store.appendAudit(auditEvent(at, { message: `m${i}` }))
        assert.deepEqual((await store.listAudit({ limit: 10 })).map((e) => e.message), ['m4', 'm3', 'm2', 'm1', 'm0'])
      })

      it('filters by node', async () => {
        await store.appendAudit(auditEvent(instant(0), { node: 'cp-1', message: 'a' }))
        await store.appendAudit(auditEvent(instant(1), { node: 'cp-2', message: 'b' }))
        await store.appendAudit(auditEvent(instant(2), { node: null, message: 'c' }))
        await store.appendAudit(auditEvent(instant(3), { node: 'cp-1', message: 'd' }))
        assert.deepEqual((await store.listAudit({ node: 'cp-1', limit: 10 })).map((e) => e.message), ['d', 'a'])
        assert.deepEqual((await store.listAudit({ node: 'cp-1', limit: 1 })).map((e) => e.message), ['d'])
        assert.deepEqual(await store.listAudit({ node: 'nope', limit: 10 }), [])
        assert.deepEqual((await store.listAudit({ node: undefined, limit: 10 })).map((e) => e.message), ['d', 'c', 'b', 'a'])
      })

      it('before an instant: only events strictly older than it', async () => {
        for (let i = 0; i < 6; i++) await store.appendAudit(auditEvent(instant(i * 1000), { message: `t${i}`, node: i % 2 ? 'cp-1' : 'cp-2' }))
        assert.deepEqual((await store.listAudit({ before: instant(3000), limit: 10 })).map((e) => e.message), ['t2', 't1', 't0'])
        assert.deepEqual((await store.listAudit({ before: instant(3001), limit: 2 })).map((e) => e.message), ['t3', 't2'])
        assert.deepEqual((await store.listAudit({ node: 'cp-1', before: instant(5000), limit: 10 })).map((e) => e.message), ['t3', 't1'])
        assert.deepEqual(await store.listAudit({ before: instant(0), limit: 10 }), [])
      })

      describe('paging 120 events, many sharing an `at`', () => {
        // 120 events over 30 instants: 4 events each at 10 of them, 1 at another 10, 6 at the rest.
        async function seed(): Promise<AuditEvent[]> {
          const events: AuditEvent[] = []
          let n = 0
          for (let t = 0; t < 30; t++) {
            const sameAt = t < 10 ? 4 : t < 20 ? 1 : 7
            for (let k = 0; k < sameAt && n < 120; k++, n++) {
              events.push(await store.appendAudit(auditEvent(instant(t * 1000), { message: `e${n}`, node: n % 3 === 0 ? 'cp-1' : 'cp-2' })))
            }
          }
          assert.equal(events.length, 120)
          return events
        }

        async function pageThrough(node: string | undefined, pageSize: number): Promise<AuditEvent[]> {
          const seen: AuditEvent[] = []
          let before: string | undefined
          for (let page = 0; page < 200; page++) {
            const events = await store.listAudit({ node, before, limit: pageSize })
            assert.ok(events.length <= pageSize)
            if (events.length === 0) return seen
            seen.push(...events)
            // The cursor is the last event's id: an instant cannot tell apart events sharing it.
            before = events[events.length - 1]!.id
          }
          assert.fail('paging did not end within 200 pages')
        }

        it('before = the last event id of a page visits every event exactly once, newest first', async () => {
          const events = await seed()
          for (const pageSize of [1, 7, 50]) {
            const seen = await pageThrough(undefined, pageSize)
            assert.equal(seen.length, 120, `page size ${pageSize}`)
            assert.equal(new Set(seen.map((e) => e.id)).size, 120)
            assert.deepEqual(seen, [...events].reverse(), 'newest first: later `at` first, later appends first within an `at`')
            for (let i = 1; i < seen.length; i++) assert.ok(Date.parse(seen[i - 1]!.at) >= Date.parse(seen[i]!.at))
          }
        })

        it('the same, filtered by node', async () => {
          const events = await seed()
          const seen = await pageThrough('cp-1', 7)
          assert.deepEqual(seen, events.filter((e) => e.node === 'cp-1').reverse())
          assert.equal(seen.length, 40)
        })
      })
    })

    it('keeps everything across close and reopen', async () => {
      const key: PodKey = { node: 'cp-1', namespace: 'kube-system', name: 'etcd' }
      const node = nodeRecord('cp-1')
      await store.createNode(node)
      const revisions = [
        await store.appendRevision(newRevision(key, { manifest: 'a\r\n' })),
        await store.appendRevision(newRevision(key, { manifest: 'b 😀' })),
      ]
      const obs = nodeObservation('cp-1')
      await store.putObservation(obs)
      const event = await store.appendAudit(auditEvent(instant(0)))
      await store.close()

      const reopened = await harness.reopen()
      assert.deepEqual(await reopened.listNodes(), [node])
      assert.deepEqual((await reopened.listRevisions([key], 10)).get(podKeyString(key)), [...revisions].reverse())
      assert.deepEqual((await reopened.getObservations(['cp-1'])).get('cp-1'), obs)
      assert.deepEqual(await reopened.listAudit({ limit: 10 }), [event])
      assert.equal((await reopened.appendRevision(newRevision(key), 2)).revision, 3)
    })
  })
}
