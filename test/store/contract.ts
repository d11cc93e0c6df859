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
import type { AuditEvent, EventRecord, JumpHostRecord, LocalNodeRecord, NewAuditEvent, NewEvent, NewRevision, NodeObservation, PodKey, RevisionRecord, SshNodeRecord, SshTarget, WebhookRecord } from '../../src/domain.ts'
import type { EventQuery, Store } from '../../src/store/store.ts'

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

export function newEvent(node: string, overrides: Partial<NewEvent> = {}): NewEvent {
  return {
    at: instant(0),
    type: 'STATIC_POD_CHANGED',
    node,
    namespace: 'kube-system',
    name: 'kube-apiserver',
    message: `kube-apiserver changed on ${node}`,
    fromHash: 'sha256:old',
    toHash: 'sha256:new',
    actor: null,
    ...overrides,
  }
}

function webhookRecord(id: string, overrides: Partial<WebhookRecord> = {}): WebhookRecord {
  return {
    id,
    url: `https://hooks.example.com/${id}`,
    types: ['STATIC_POD_CHANGED'],
    nodes: ['cp-*'],
    sealedSecret: 'v1.c2VhbGVk.bm90IGluIGNsZWFy',
    createdAt: instant(0),
    createdBy: 'alice',
    lastDeliveryAt: null,
    lastResult: null,
    failedDeliveries: 0,
    ...overrides,
  }
}

/** Every event in id order (a test store holds far fewer than the limit). */
async function listAllEvents(store: Store, query: Partial<EventQuery> = {}): Promise<EventRecord[]> {
  return store.listEvents({ limit: 1000, order: 'oldest', ...query })
}

/** pruneEvents called until it answers 0 (a store may bound the work of one call); the total. */
async function pruneAll(store: Store, before: string): Promise<number> {
  let total = 0
  for (let call = 0; call < 100; call++) {
    const pruned = await store.pruneEvents(before)
    if (pruned === 0) return total
    total += pruned
  }
  assert.fail('pruneEvents did not reach 0 within 100 calls')
}

/** Ids strictly increasing as numbers ("10" after "9"). */
function assertIncreasing(events: EventRecord[]): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(BigInt(events[i]!.id) > BigInt(events[i - 1]!.id), `id ${events[i]!.id} (at ${i}) follows ${events[i - 1]!.id}`)
  }
}

function isCode(code: ErrorCode): (err: unknown) => boolean {
  return (err) => isServiceError(err) && err.code === code
}

/** A ServiceError with this code, naming this input field. */
function isField(code: ErrorCode, field: string): (err: unknown) => boolean {
  return (err) => isServiceError(err) && err.code === code && err.field?.join('.') === field
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

    describe('events', () => {
      /** The version of the node's stored observation (the caller's view of it). */
      async function versionOf(node: string): Promise<string | null | undefined> {
        return (await store.getObservationsIfChanged([node], new Map())).get(node)?.version
      }

      const allEvents = (query: Partial<EventQuery> = {}): Promise<EventRecord[]> => listAllEvents(store, query)

      it('appendEvents answers the events as stored, with decimal ids in the order given; listEvents returns them', async () => {
        const input = [
          newEvent('cp-1', { message: 'a', actor: 'alice' }),
          newEvent('cp-1', { message: 'b', namespace: null, name: null, fromHash: null, toHash: null, type: 'NODE_UNREACHABLE' }),
          newEvent('cp-2', { message: 'c ünïcødé 😀\nline', type: 'FINDING_ADDED' }),
        ]
        const appended = await store.appendEvents(input)
        assert.deepEqual(
          appended.map(({ id: _id, ...rest }) => rest),
          input,
        )
        for (const e of appended) assert.match(e.id, /^\d+$/)
        assertIncreasing(appended)
        assert.deepEqual(await allEvents(), appended)
        assert.deepEqual(await store.appendEvents([]), [])
        assert.equal((await allEvents()).length, 3)
      })

      it('answers only the interface fields, `at` in canonical form', async () => {
        const withExtra = { ...newEvent('cp-1', { at: '2024-05-01T14:00:00+02:00' }), extra: 'not stored' }
        const [stored] = await store.appendEvents([withExtra])
        assert.ok(stored)
        assert.deepEqual(Object.keys(stored).sort(), ['actor', 'at', 'fromHash', 'id', 'message', 'name', 'namespace', 'node', 'toHash', 'type'])
        assert.equal(stored.at, '2024-05-01T12:00:00.000Z')
        assert.deepEqual(await allEvents(), [stored])
        await assert.rejects(store.appendEvents([newEvent('cp-1', { at: 'yesterday' })]), isField('VALIDATION_FAILED', 'at'))
        assert.equal((await allEvents()).length, 1)
      })

      it('ids increase across appends and putObservationIf, as numbers (past 9 and 99)', async () => {
        const appended: EventRecord[] = []
        for (let i = 0; i < 5; i++) appended.push(...(await store.appendEvents([newEvent('cp-1', { message: `a${i}` })])))
        const conditional = await store.putObservationIf(nodeObservation('cp-1'), null, [newEvent('cp-1', { message: 'p0' }), newEvent('cp-1', { message: 'p1' })])
        assert.ok(conditional.stored)
        appended.push(...conditional.events)
        for (let i = 0; i < 10; i++) appended.push(...(await store.appendEvents([newEvent('cp-2', { message: `b${i}` }), newEvent('cp-1', { message: `c${i}` })])))
        const version = await versionOf('cp-1')
        const again = await store.putObservationIf(nodeObservation('cp-1'), version ?? null, [newEvent('cp-1', { message: 'p2' })])
        assert.ok(again.stored)
        appended.push(...again.events)
        for (let i = 0; i < 80; i++) appended.push(...(await store.appendEvents([newEvent('cp-3', { message: `d${i}` })])))
        assert.equal(appended.length, 108)
        assertIncreasing(appended)
        assert.deepEqual(await allEvents(), appended)
        assert.deepEqual(await store.listEvents({ limit: 1000, order: 'newest' }), [...appended].reverse())
      })

      it('order newest or oldest, and limit', async () => {
        const appended = await store.appendEvents(Array.from({ length: 5 }, (_, i) => newEvent('cp-1', { message: `m${i}` })))
        assert.deepEqual((await store.listEvents({ limit: 2, order: 'newest' })).map((e) => e.message), ['m4', 'm3'])
        assert.deepEqual((await store.listEvents({ limit: 2, order: 'oldest' })).map((e) => e.message), ['m0', 'm1'])
        assert.deepEqual(await store.listEvents({ limit: 10, order: 'newest' }), [...appended].reverse())
        assert.deepEqual(await store.listEvents({ limit: 0, order: 'newest' }), [])
        assert.deepEqual(await store.listEvents({ limit: 0, order: 'oldest' }), [])
      })

      describe('paging through 120 events', () => {
        async function seed(): Promise<EventRecord[]> {
          const events: EventRecord[] = []
          // Appends of 1 to 15 events each; every third event is cp-1's.
          for (let n = 0, size = 1; n < 120; size = (size % 15) + 1) {
            const batch = Array.from({ length: Math.min(size, 120 - n) }, (_, k) => newEvent((n + k) % 3 === 0 ? 'cp-1' : 'cp-2', { message: `e${n + k}` }))
            n += batch.length
            events.push(...(await store.appendEvents(batch)))
          }
          assert.equal(events.length, 120)
          return events
        }

        async function pageThrough(order: 'newest' | 'oldest', pageSize: number, node?: string): Promise<EventRecord[]> {
          const seen: EventRecord[] = []
          let cursor: string | undefined
          for (let page = 0; page < 200; page++) {
            const events = await store.listEvents({
              order,
              limit: pageSize,
              node,
              ...(cursor === undefined ? {} : order === 'oldest' ? { after: cursor } : { before: cursor }),
            })
            assert.ok(events.length <= pageSize)
            if (events.length === 0) return seen
            seen.push(...events)
            cursor = events[events.length - 1]!.id
          }
          assert.fail('paging did not end within 200 pages')
        }

        it('oldest with after = the last id of a page gives each exactly once, in id order', async () => {
          const events = await seed()
          for (const pageSize of [1, 7, 50]) assert.deepEqual(await pageThrough('oldest', pageSize), events, `page size ${pageSize}`)
        })

        it('newest with before = the last id of a page gives each exactly once, newest first', async () => {
          const events = await seed()
          for (const pageSize of [1, 7, 50]) assert.deepEqual(await pageThrough('newest', pageSize), [...events].reverse(), `page size ${pageSize}`)
        })

        it('the same, filtered by node', async () => {
          const events = await seed()
          const mine = events.filter((e) => e.node === 'cp-1')
          assert.equal(mine.length, 40)
          assert.deepEqual(await pageThrough('oldest', 7, 'cp-1'), mine)
          assert.deepEqual(await pageThrough('newest', 7, 'cp-1'), [...mine].reverse())
        })

        it('after and before together: only the ids strictly between them', async () => {
          const events = await seed()
          const window = { after: events[9]!.id, before: events[99]!.id, limit: 1000 }
          assert.deepEqual(await store.listEvents({ ...window, order: 'oldest' }), events.slice(10, 99))
          assert.deepEqual(await store.listEvents({ ...window, order: 'newest' }), events.slice(10, 99).reverse())
          assert.deepEqual(await store.listEvents({ ...window, order: 'newest', limit: 3 }), events.slice(96, 99).reverse())
          assert.deepEqual(await store.listEvents({ after: events[9]!.id, before: events[10]!.id, limit: 10, order: 'oldest' }), [])
          assert.deepEqual(await store.listEvents({ after: events[10]!.id, before: events[9]!.id, limit: 10, order: 'oldest' }), [])
          assert.deepEqual(await store.listEvents({ after: events[119]!.id, limit: 10, order: 'oldest' }), [])
          assert.deepEqual(await store.listEvents({ before: events[0]!.id, limit: 10, order: 'newest' }), [])
          // A cursor is a number: "0" and leading zeros mean what they say.
          assert.deepEqual(await store.listEvents({ after: '0', limit: 2, order: 'oldest' }), events.slice(0, 2))
          assert.deepEqual(await store.listEvents({ before: `000${events[2]!.id}`, limit: 10, order: 'oldest' }), events.slice(0, 2))
          // Past every id there can be: nothing after it, everything before it.
          assert.deepEqual(await store.listEvents({ after: '99999999999999999999', limit: 10, order: 'oldest' }), [])
          assert.deepEqual(await store.listEvents({ before: '99999999999999999999', limit: 2, order: 'newest' }), events.slice(118).reverse())
        })
      })

      it('filters by node (exactly) and by types; no types or an empty list: every type', async () => {
        const appended = await store.appendEvents([
          newEvent('cp-1', { type: 'STATIC_POD_ADDED', message: 'a' }),
          newEvent('cp-10', { type: 'STATIC_POD_ADDED', message: 'b' }),
          newEvent('cp-1', { type: 'POD_READY', message: 'c' }),
          newEvent('cp-2', { type: 'CRASH_LOOP', message: 'd' }),
          newEvent('cp-1', { type: 'CRASH_LOOP', message: 'e' }),
          newEvent('cp', { type: 'POD_READY', message: 'f' }),
        ])
        const messages = (events: EventRecord[]) => events.map((e) => e.message)
        assert.deepEqual(messages(await allEvents({ node: 'cp-1' })), ['a', 'c', 'e'])
        assert.deepEqual(messages(await allEvents({ node: 'cp' })), ['f'])
        assert.deepEqual(await allEvents({ node: 'nope' }), [])
        assert.deepEqual(messages(await allEvents({ types: ['CRASH_LOOP'] })), ['d', 'e'])
        assert.deepEqual(messages(await allEvents({ types: ['CRASH_LOOP', 'STATIC_POD_ADDED'] })), ['a', 'b', 'd', 'e'])
        assert.deepEqual(messages(await allEvents({ types: ['CRASH_LOOP', 'CRASH_LOOP'] })), ['d', 'e'])
        assert.deepEqual(await allEvents({ types: ['ROLLOUT_STARTED'] }), [])
        assert.deepEqual(await allEvents({ types: [] }), appended)
        assert.deepEqual(messages(await allEvents({ node: 'cp-1', types: ['POD_READY', 'CRASH_LOOP'] })), ['c', 'e'])
        assert.deepEqual(messages(await store.listEvents({ node: 'cp-1', types: ['POD_READY', 'CRASH_LOOP', 'STATIC_POD_ADDED'], limit: 2, order: 'newest' })), ['e', 'c'])
        assert.deepEqual(messages(await store.listEvents({ types: ['POD_READY'], limit: 1, order: 'oldest', after: appended[2]!.id })), ['f'])
      })

      it('rejects an after or before that is not a decimal id, and a negative limit, naming the field', async () => {
        await store.appendEvents([newEvent('cp-1')])
        for (const bad of ['abc', '', '-1', '1.5', '1e3', ' 1', '0x10']) {
          await assert.rejects(store.listEvents({ after: bad, limit: 5, order: 'oldest' }), isField('VALIDATION_FAILED', 'after'), `after ${JSON.stringify(bad)}`)
          await assert.rejects(store.listEvents({ before: bad, limit: 5, order: 'newest' }), isField('VALIDATION_FAILED', 'before'), `before ${JSON.stringify(bad)}`)
        }
        await assert.rejects(store.listEvents({ after: 'x', limit: 0, order: 'oldest' }), isField('VALIDATION_FAILED', 'after'), 'even with limit 0')
        await assert.rejects(store.listEvents({ limit: -1, order: 'oldest' }), isField('VALIDATION_FAILED', 'limit'))
      })

      it('an event with a onceKey is stored once: across appends, within one, and by two appends at once', async () => {
        const first = await store.appendEvents([newEvent('cp-1', { onceKey: 'cert/apiserver.crt/2025-01-01', message: 'first' })])
        assert.equal(first.length, 1)
        assert.deepEqual(await store.appendEvents([newEvent('cp-1', { onceKey: 'cert/apiserver.crt/2025-01-01', message: 'again' })]), [])

        const mixed = await store.appendEvents([
          newEvent('cp-1', { onceKey: 'k2', message: 'k2 first' }),
          newEvent('cp-1', { message: 'no key' }),
          newEvent('cp-1', { onceKey: 'k2', message: 'k2 repeated' }),
          newEvent('cp-1', { onceKey: 'cert/apiserver.crt/2025-01-01', message: 'stored before' }),
          newEvent('cp-1', { onceKey: 'k3', message: 'k3' }),
        ])
        assert.deepEqual(mixed.map((e) => e.message), ['k2 first', 'no key', 'k3'])
        assertIncreasing([...first, ...mixed])

        for (let round = 0; round < 5; round++) {
          const [a, b] = await Promise.all([
            store.appendEvents([newEvent('cp-1', { onceKey: `race-${round}`, message: `race ${round} a` })]),
            store.appendEvents([newEvent('cp-2', { onceKey: `race-${round}`, message: `race ${round} b` }), newEvent('cp-2', { message: `plain ${round}` })]),
          ])
          const winners = [...a, ...b].filter((e) => e.message.startsWith('race'))
          assert.equal(winners.length, 1, `round ${round}: one append stores it`)
          assert.deepEqual((await allEvents()).filter((e) => e.message.startsWith(`race ${round}`)), winners)
        }
        const messages = (await allEvents()).map((e) => e.message)
        assert.equal(messages.filter((m) => m.startsWith('plain')).length, 5, 'events without a key are stored whatever else is skipped')
        assert.equal(messages.length, 1 + 3 + 5 + 5)
      })

      it('onceKeys are told apart by their whole text, however long', async () => {
        const long = 'k'.repeat(3000)
        const stored = await store.appendEvents([
          newEvent('cp-1', { onceKey: long, message: 'long' }),
          newEvent('cp-1', { onceKey: `${long}x`, message: 'longer' }),
          newEvent('cp-1', { onceKey: 'K', message: 'K' }),
          newEvent('cp-1', { onceKey: 'k', message: 'k' }),
        ])
        assert.deepEqual(stored.map((e) => e.message), ['long', 'longer', 'K', 'k'])
        assert.deepEqual(await store.appendEvents([newEvent('cp-1', { onceKey: long })]), [])
      })

      describe('putObservationIf', () => {
        it('with the version stored: stores the observation with a new version and appends the events', async () => {
          await store.putObservation(nodeObservation('cp-1'))
          const v1 = await versionOf('cp-1')
          assert.equal(typeof v1, 'string')
          const newer = nodeObservation('cp-1', { observedAt: instant(9000), pods: [] })
          const events = [newEvent('cp-1', { type: 'STATIC_POD_REMOVED', message: 'removed' }), newEvent('cp-1', { type: 'FINDING_RESOLVED', message: 'resolved' })]
          const result = await store.putObservationIf(newer, v1!, events)
          assert.ok(result.stored)
          assert.deepEqual(result.events.map(({ id: _id, ...rest }) => rest), events)
          assertIncreasing(result.events)
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), newer)
          const v2 = await versionOf('cp-1')
          assert.ok(typeof v2 === 'string' && v2 !== v1)
          assert.deepEqual(await allEvents(), result.events)
          assert.deepEqual(await store.putObservationIf(newer, v2, []), { stored: true, events: [] })
        })

        it('with a stale version: stores nothing and appends nothing', async () => {
          await store.putObservation(nodeObservation('cp-1'))
          const v1 = await versionOf('cp-1')
          const current = nodeObservation('cp-1', { observedAt: instant(7000) })
          await store.putObservation(current)
          const v2 = await versionOf('cp-1')
          assert.deepEqual(await store.putObservationIf(nodeObservation('cp-1', { observedAt: instant(9000) }), v1!, [newEvent('cp-1')]), { stored: false })
          assert.deepEqual(await store.putObservationIf(nodeObservation('cp-1', { observedAt: instant(9000) }), 'a version never stored', [newEvent('cp-1')]), { stored: false })
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), current)
          assert.equal(await versionOf('cp-1'), v2)
          assert.deepEqual(await allEvents(), [])
        })

        it('expectedVersion null: stores on a node never observed; fails once the node has a versioned observation', async () => {
          const first = nodeObservation('cp-1')
          const result = await store.putObservationIf(first, null, [newEvent('cp-1', { message: 'first' })])
          assert.ok(result.stored)
          assert.deepEqual(result.events.map((e) => e.message), ['first'])
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), first)
          assert.equal(typeof (await versionOf('cp-1')), 'string')

          assert.deepEqual(await store.putObservationIf(nodeObservation('cp-1', { pods: [] }), null, [newEvent('cp-1', { message: 'second' })]), { stored: false })
          await store.putObservation(nodeObservation('cp-2'))
          assert.deepEqual(await store.putObservationIf(nodeObservation('cp-2', { pods: [] }), null, [newEvent('cp-2', { message: 'third' })]), { stored: false })
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), first)
          assert.deepEqual((await store.getObservations(['cp-2'])).get('cp-2'), nodeObservation('cp-2'))
          assert.deepEqual((await allEvents()).map((e) => e.message), ['first'])
        })

        it('of two or three at once with the same expected version, exactly one wins, and only its events are kept', async () => {
          await store.putObservation(nodeObservation('cp-1'))
          let expected = (await versionOf('cp-1'))!
          const winners: EventRecord[] = []
          for (let round = 0; round < 6; round++) {
            const contenders = round % 2 === 0 ? 2 : 3
            const observations = Array.from({ length: contenders }, (_, i) => nodeObservation('cp-1', { observedAt: instant(10_000 * round + i) }))
            const results = await Promise.all(
              observations.map((obs, i) => store.putObservationIf(obs, expected, [newEvent('cp-1', { message: `round ${round} by ${i}` }), newEvent('cp-1', { message: `round ${round} by ${i}, second` })])),
            )
            const won = results.flatMap((r, i) => (r.stored ? [i] : []))
            assert.equal(won.length, 1, `round ${round}: one of ${contenders} wins`)
            const winner = won[0]!
            const result = results[winner]!
            assert.ok(result.stored)
            winners.push(...result.events)
            assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), observations[winner])
            const next = await versionOf('cp-1')
            assert.ok(typeof next === 'string' && next !== expected)
            expected = next
          }
          assert.deepEqual(await allEvents(), winners)
          assert.equal(winners.length, 12)
        })

        it('the version that wins is the one getObservationsIfChanged shows, and the next putObservationIf needs it', async () => {
          await store.putObservation(nodeObservation('cp-1'))
          const v1 = (await versionOf('cp-1'))!
          const newer = nodeObservation('cp-1', { observedAt: instant(9000) })
          assert.ok((await store.putObservationIf(newer, v1, [])).stored)
          const seen = await store.getObservationsIfChanged(['cp-1'], new Map([['cp-1', v1]]))
          const v2 = seen.get('cp-1')?.version
          assert.ok(typeof v2 === 'string' && v2 !== v1)
          assert.deepEqual(seen.get('cp-1')?.observation, newer, 'changed for a reader holding the old version')
          assert.deepEqual(await store.getObservationsIfChanged(['cp-1'], new Map([['cp-1', v2]])), new Map([['cp-1', { version: v2, observation: null }]]))
          assert.deepEqual(await store.putObservationIf(newer, v1, [newEvent('cp-1')]), { stored: false })
          assert.ok((await store.putObservationIf(newer, v2, [newEvent('cp-1')])).stored)
          assert.equal((await allEvents()).length, 1)
        })

        it('skips an event whose onceKey is stored, and still stores the observation', async () => {
          await store.appendEvents([newEvent('cp-1', { onceKey: 'once', message: 'earlier' })])
          const obs = nodeObservation('cp-1')
          const result = await store.putObservationIf(obs, null, [newEvent('cp-1', { onceKey: 'once', message: 'skipped' }), newEvent('cp-1', { message: 'kept' })])
          assert.ok(result.stored)
          assert.deepEqual(result.events.map((e) => e.message), ['kept'])
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), obs)
          assert.deepEqual((await allEvents()).map((e) => e.message), ['earlier', 'kept'])
        })

        it('works for observations larger than a DynamoDB item', async () => {
          const large = nodeObservation('cp-1', { findings: [{ code: 'STRAY_FILE', fileName: 'x.bak', message: 'ü'.repeat(200_000) }] })
          const result = await store.putObservationIf(large, null, [newEvent('cp-1')])
          assert.ok(result.stored)
          const version = (await versionOf('cp-1'))!
          const results = await Promise.all([store.putObservationIf(large, version, []), store.putObservationIf(nodeObservation('cp-1'), version, [])])
          assert.equal(results.filter((r) => r.stored).length, 1)
          const expected = results[0]!.stored ? large : nodeObservation('cp-1')
          assert.deepEqual((await store.getObservations(['cp-1'])).get('cp-1'), expected)
        })
      })

      it('pruneEvents forgets only the events recorded before the instant, and answers how many', async () => {
        const offsets = [3, 0, 5, 1, 4, 2, 3]
        const appended = await store.appendEvents(offsets.map((o, i) => newEvent(`cp-${i}`, { at: instant(o * 1000), message: `t${o}` })))
        assert.equal(await pruneAll(store, instant(0)), 0)
        assert.equal(await pruneAll(store, instant(3000)), 3)
        assert.deepEqual(await allEvents(), appended.filter((e) => Date.parse(e.at) >= T0 + 3000))
        assert.equal(await pruneAll(store, instant(3000)), 0)
        // A non-canonical instant means the same instant.
        assert.equal(await pruneAll(store, '2024-05-01T14:00:04.001+02:00'), 3)
        assert.deepEqual((await allEvents()).map((e) => e.message), ['t5'])
        await assert.rejects(store.pruneEvents('last week'), isField('VALIDATION_FAILED', 'before'))
        assert.equal((await allEvents()).length, 1)
      })

      it('prunes many events when called until it answers 0', async () => {
        for (let i = 0; i < 6; i++) await store.appendEvents(Array.from({ length: 50 }, (_, k) => newEvent('cp-1', { at: instant(i * 1000 + k), message: `${i}/${k}` })))
        assert.equal(await pruneAll(store, instant(5000)), 250)
        assert.equal((await allEvents()).length, 50)
      })

      it('ids are never handed out again, even after every event is pruned', async () => {
        const appended = await store.appendEvents(Array.from({ length: 12 }, () => newEvent('cp-1', { at: instant(0) })))
        assert.equal(await pruneAll(store, instant(1)), 12)
        const [later] = await store.appendEvents([newEvent('cp-1', { at: instant(0) })])
        assert.ok(later)
        assertIncreasing([...appended, later])
        assert.deepEqual(await allEvents(), [later])
      })

      it('a pruned event takes its onceKey with it: the key can be stored again', async () => {
        await store.appendEvents([newEvent('cp-1', { at: instant(0), onceKey: 'cert', message: 'old' }), newEvent('cp-1', { at: instant(5000), onceKey: 'kept', message: 'kept' })])
        assert.equal(await pruneAll(store, instant(1000)), 1)
        assert.deepEqual((await store.appendEvents([newEvent('cp-1', { onceKey: 'cert', message: 'new' }), newEvent('cp-1', { onceKey: 'kept', message: 'twice' })])).map((e) => e.message), ['new'])
        assert.deepEqual((await allEvents()).map((e) => e.message), ['kept', 'new'])
      })

      it('deleteNode keeps the node\'s events', async () => {
        await store.createNode(nodeRecord('cp-1'))
        const mine = await store.putObservationIf(nodeObservation('cp-1'), null, [newEvent('cp-1', { message: 'a' })])
        assert.ok(mine.stored)
        const more = await store.appendEvents([newEvent('cp-1', { message: 'b' }), newEvent('cp-2', { message: 'c' })])
        assert.equal(await store.deleteNode('cp-1'), true)
        assert.deepEqual(await allEvents({ node: 'cp-1' }), [...mine.events, more[0]])
        assert.equal((await allEvents()).length, 3)
        // The node registered again starts from no observation: null is its expected version again.
        assert.ok((await store.putObservationIf(nodeObservation('cp-1'), null, [])).stored)
      })
    })

    describe('webhooks', () => {
      it('createWebhook then listWebhooks returns them as given, oldest first (ties by id)', async () => {
        const hooks = [
          webhookRecord('w-b', { createdAt: instant(2000), types: ['CRASH_LOOP', 'POD_NOT_READY'], nodes: ['cp-*', 'etcd-?'] }),
          webhookRecord('w-c', { createdAt: instant(1000), url: 'https://hooks.example.com/ünï?x=1&y=2' }),
          webhookRecord('w-a', { createdAt: instant(2000), lastDeliveryAt: instant(3000), lastResult: '200', failedDeliveries: 4 }),
          webhookRecord('w-d', { createdAt: instant(0), types: [], nodes: [] }),
        ]
        for (const hook of hooks) await store.createWebhook(hook)
        assert.deepEqual(await store.listWebhooks(), [hooks[3], hooks[1], hooks[2], hooks[0]])
      })

      it('an empty store has none', async () => {
        assert.deepEqual(await store.listWebhooks(), [])
      })

      it('createWebhook of a taken id fails with ALREADY_EXISTS and changes nothing', async () => {
        const original = webhookRecord('w-1')
        await store.createWebhook(original)
        await assert.rejects(store.createWebhook(webhookRecord('w-1', { url: 'https://elsewhere.example.com/' })), isField('ALREADY_EXISTS', 'id'))
        assert.deepEqual(await store.listWebhooks(), [original])
      })

      it('deleteWebhook removes only that one; false when there is none', async () => {
        await store.createWebhook(webhookRecord('w-1'))
        await store.createWebhook(webhookRecord('w-2'))
        assert.equal(await store.deleteWebhook('w-1'), true)
        assert.deepEqual((await store.listWebhooks()).map((w) => w.id), ['w-2'])
        assert.equal(await store.deleteWebhook('w-1'), false, 'a second delete finds nothing')
        assert.equal(await store.deleteWebhook('ghost'), false)
        // The id is free again.
        await store.createWebhook(webhookRecord('w-1', { createdAt: instant(5000) }))
        assert.deepEqual((await store.listWebhooks()).map((w) => w.id), ['w-2', 'w-1'])
      })

      it('recordWebhookDelivery records the last delivery; failedDeliveries counts only those given up', async () => {
        const hook = webhookRecord('w-1')
        const other = webhookRecord('w-2')
        await store.createWebhook(hook)
        await store.createWebhook(other)
        const stateOf = async (id: string) => (await store.listWebhooks()).find((w) => w.id === id)

        await store.recordWebhookDelivery('w-1', { at: instant(1000), result: '200', gaveUp: false })
        assert.deepEqual(await stateOf('w-1'), { ...hook, lastDeliveryAt: instant(1000), lastResult: '200', failedDeliveries: 0 })
        await store.recordWebhookDelivery('w-1', { at: instant(2000), result: '500', gaveUp: true })
        assert.deepEqual(await stateOf('w-1'), { ...hook, lastDeliveryAt: instant(2000), lastResult: '500', failedDeliveries: 1 })
        await store.recordWebhookDelivery('w-1', { at: instant(3000), result: 'connect ECONNREFUSED 10.0.0.1:443', gaveUp: true })
        await store.recordWebhookDelivery('w-1', { at: instant(4000), result: '503', gaveUp: false })
        assert.deepEqual(await stateOf('w-1'), { ...hook, lastDeliveryAt: instant(4000), lastResult: '503', failedDeliveries: 2 })
        await Promise.all(Array.from({ length: 5 }, (_, i) => store.recordWebhookDelivery('w-1', { at: instant(5000 + i), result: '500', gaveUp: true })))
        assert.equal((await stateOf('w-1'))?.failedDeliveries, 7, 'concurrent deliveries each count')

        assert.deepEqual(await stateOf('w-2'), other)
        await store.recordWebhookDelivery('ghost', { at: instant(1000), result: '200', gaveUp: true })
        assert.deepEqual((await store.listWebhooks()).map((w) => w.id), ['w-1', 'w-2'])
      })
    })

    it('keeps events and webhooks across close and reopen; ids go on increasing', async () => {
      const appended = await store.appendEvents([newEvent('cp-1', { onceKey: 'once' }), newEvent('cp-2')])
      const hook = webhookRecord('w-1', { types: ['ROLLOUT_FINISHED'] })
      await store.createWebhook(hook)
      await store.close()
      store = await harness.reopen()
      assert.deepEqual(await listAllEvents(store), appended)
      assert.deepEqual(await store.listWebhooks(), [hook])
      const later = await store.appendEvents([newEvent('cp-1', { onceKey: 'once' }), newEvent('cp-3')])
      assert.equal(later.length, 1)
      assertIncreasing([...appended, ...later])
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
