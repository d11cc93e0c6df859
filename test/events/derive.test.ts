// observationEvents: the events between two consecutive observations of a
// node, on observations built by hand (the shape of test/store/contract.ts's
// nodeObservation), round after round as the watcher would feed them.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isPodReady, runtimeOfPod, type ContainerRuntimeState, type NewEvent, type NodeObservation, type ObservedPod, type PodRuntimeState } from '../../src/domain.ts'
import { observationEvents, type ObservationContext, type PodChange } from '../../src/events/derive.ts'
import type { Finding } from '../../src/manifest/types.ts'

const T0 = Date.parse('2026-03-01T00:00:00.000Z')
const instant = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString()
const hashOf = (seed: string): string => `sha256:${seed.padEnd(64, '0')}`

function pod(name: string, overrides: Partial<ObservedPod> = {}): ObservedPod {
  return {
    namespace: 'kube-system',
    name,
    fileName: `${name}.yaml`,
    hash: hashOf('aaaa1111'),
    revision: 1,
    managed: false,
    manifest: `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n`,
    ...overrides,
  }
}

function container(name: string, overrides: Partial<ContainerRuntimeState> = {}): ContainerRuntimeState {
  return { name, image: `registry.k8s.io/${name}:v1.31.0`, state: 'RUNNING', ready: null, restartCount: 0, ...overrides }
}

/** A READY sandbox whose one container (named like the pod) runs. */
function sandbox(name: string, overrides: Partial<PodRuntimeState> = {}): PodRuntimeState {
  return {
    namespace: 'kube-system',
    name,
    state: 'READY',
    containers: [container(name)],
    observedAt: instant(0),
    sandboxId: `sandbox-${name}-1`,
    sandboxCreatedAt: instant(-600),
    ...overrides,
  }
}

const finding = (code: Finding['code'], fileName: string | null, message = 'the kubelet runs this file too'): Finding => ({ code, fileName, message })

/** A reachable node with kube-apiserver and etcd, both running. */
function observation(overrides: Partial<NodeObservation> = {}, at = 0): NodeObservation {
  return {
    node: 'cp-1',
    observedAt: instant(at),
    pods: [pod('etcd'), pod('kube-apiserver')],
    findings: [],
    agent: { reachable: true, lastContactAt: instant(at), lastError: null, latencyMs: 12.5 },
    kubelet: { healthy: true, checkedAt: instant(at), message: null },
    kubeletUnavailableReason: null,
    runtime: [sandbox('etcd'), sandbox('kube-apiserver')],
    runtimeUnavailableReason: null,
    ...overrides,
  }
}

/** The failed read node-state records: the last state kept, the agent unreachable. */
function failed(last: NodeObservation, error = 'NODE_UNREACHABLE: connect ECONNREFUSED 10.0.0.1:22'): NodeObservation {
  return { ...last, agent: { reachable: false, lastContactAt: last.agent.lastContactAt, lastError: error, latencyMs: last.agent.latencyMs } }
}

/** The record of a node never read successfully (node-state's emptyObservation, after a failure). */
function neverRead(error = 'NODE_UNREACHABLE: connect ETIMEDOUT'): NodeObservation {
  return {
    node: 'cp-1',
    observedAt: null,
    pods: [],
    findings: [],
    agent: { reachable: false, lastContactAt: null, lastError: error, latencyMs: null },
    kubelet: null,
    kubeletUnavailableReason: 'the node has not been read yet',
    runtime: null,
    runtimeUnavailableReason: 'the node has not been read yet',
  }
}

/** Replace one sandbox of an observation's runtime. */
function withRuntime(obs: NodeObservation, name: string, runtime: PodRuntimeState | null): NodeObservation {
  const others = (obs.runtime ?? []).filter((p) => p.name !== name)
  return { ...obs, runtime: runtime ? [...others, runtime] : others }
}

interface Asked {
  pod: ObservedPod
  change: PodChange
}

function context(actors: Record<string, string> = {}, extra: Partial<ObservationContext> = {}): ObservationContext & { asked: Asked[] } {
  const asked: Asked[] = []
  return {
    at: instant(60),
    actorOf(p, change) {
      asked.push({ pod: p, change })
      return actors[`${change} ${p.namespace}/${p.name}`] ?? null
    },
    ...extra,
    asked,
  }
}

const summary = (events: NewEvent[]): string[] => events.map((e) => `${e.type} ${e.namespace ?? '-'}/${e.name ?? '-'}`)

/** Feeds observations one after another as the watcher would, and returns each round's events. */
function rounds(observations: NodeObservation[], ctx: ObservationContext = context()): NewEvent[][] {
  return observations.map((next, i) => observationEvents(i === 0 ? null : observations[i - 1]!, next, { ...ctx, at: next.observedAt ?? instant(i) }))
}

describe('observationEvents: the baseline', () => {
  it('gives nothing for the first observation of a reachable node, whatever it holds', () => {
    const first = observation({
      pods: [pod('etcd'), pod('kube-apiserver'), pod('kube-scheduler')],
      findings: [finding('STRAY_FILE', 'kube-apiserver.yaml.bak')],
      runtime: [
        sandbox('etcd', { containers: [container('etcd', { state: 'TERMINATED', restartCount: 9, exitCode: 1 })] }),
        sandbox('kube-apiserver'),
      ],
    })
    const ctx = context()
    assert.deepEqual(observationEvents(null, first, ctx), [])
    assert.deepEqual(ctx.asked, [], 'no actor asked for a baseline')
  })

  it('gives NODE_UNREACHABLE, with the error, for a first observation that failed', () => {
    const events = observationEvents(null, neverRead('NODE_UNREACHABLE: connect ETIMEDOUT 10.0.0.1:22'), context())
    assert.deepEqual(events, [
      {
        at: instant(60),
        type: 'NODE_UNREACHABLE',
        node: 'cp-1',
        namespace: null,
        name: null,
        message: 'cp-1 is unreachable: NODE_UNREACHABLE: connect ETIMEDOUT 10.0.0.1:22',
        fromHash: null,
        toHash: null,
        actor: null,
      },
    ])
  })

  it('takes the first successful read after reads that never succeeded as the baseline: NODE_REACHABLE only', () => {
    const [first, second, third] = rounds([neverRead(), neverRead(), observation({ findings: [finding('STRAY_FILE', 'x.bak')] }, 30)])
    assert.deepEqual(summary(first!), ['NODE_UNREACHABLE -/-'])
    assert.deepEqual(second, [], 'still unreachable: nothing new')
    assert.deepEqual(summary(third!), ['NODE_REACHABLE -/-'], 'no STATIC_POD_ADDED for pods that were there all along')
    assert.equal(third![0]!.message, 'cp-1 is reachable again')
  })

  it('refuses observations of two different nodes', () => {
    assert.throws(() => observationEvents(observation(), observation({ node: 'cp-2' }), context()), /cp-1 and cp-2/)
  })
})

describe('observationEvents: a steady node', () => {
  it('gives nothing, round after round, though times, latency and restart counts past the threshold move', () => {
    const round = (i: number): NodeObservation =>
      observation(
        {
          pods: [pod('etcd'), pod('kube-apiserver'), pod('kube-scheduler')],
          findings: [finding('STRAY_FILE', 'etcd.yaml.bak'), finding('SUBDIRECTORY', 'old', 'a directory')],
          agent: { reachable: true, lastContactAt: instant(i * 30), lastError: null, latencyMs: 10 + i },
          runtime: [
            sandbox('etcd', { observedAt: instant(i * 30) }),
            sandbox('kube-apiserver', { observedAt: instant(i * 30), containers: [container('kube-apiserver', { restartCount: 5 + i, lastTermination: { exitCode: 1, reason: 'Error', finishedAt: instant(i * 30) } })] }),
            // kube-scheduler is never ready: not announced again and again.
            sandbox('kube-scheduler', { state: 'NOTREADY', observedAt: instant(i * 30) }),
          ],
        },
        i * 30,
      )
    const ctx = context()
    const all = rounds([0, 1, 2, 3, 4, 5].map(round), ctx)
    assert.deepEqual(all, [[], [], [], [], [], []])
    assert.deepEqual(ctx.asked, [])
  })

  it('gives nothing while a node stays unreachable, or stays without a runtime', () => {
    const ok = observation()
    const noRuntime = observation({ runtime: null, runtimeUnavailableReason: 'crictl: not found' }, 30)
    assert.deepEqual(rounds([ok, noRuntime, { ...noRuntime, observedAt: instant(60) }]).slice(1), [[], []])
    const down = failed(ok)
    assert.deepEqual(rounds([ok, down, failed(down, 'NODE_UNREACHABLE: connect EHOSTUNREACH'), failed(down)]).slice(2), [[], []])
  })
})

describe('observationEvents: reachability', () => {
  it('NODE_UNREACHABLE when a read fails after one that worked, naming the error, and nothing else', () => {
    const ok = observation()
    // Whatever the failed observation holds, pods are not judged on it.
    const down = { ...failed(ok), pods: [], runtime: [] }
    const events = observationEvents(ok, down, context())
    assert.deepEqual(summary(events), ['NODE_UNREACHABLE -/-'])
    assert.equal(events[0]!.message, 'cp-1 is unreachable: NODE_UNREACHABLE: connect ECONNREFUSED 10.0.0.1:22')
  })

  it('says only "unreachable" when the failure has no error', () => {
    const down = { ...failed(observation()), agent: { reachable: false, lastContactAt: null, lastError: null, latencyMs: null } }
    assert.equal(observationEvents(observation(), down, context())[0]!.message, 'cp-1 is unreachable')
  })

  it('NODE_REACHABLE when a read works again, with what changed meanwhile compared to the last state seen', () => {
    const ok = observation()
    const down = failed(ok)
    const back = observation(
      {
        pods: [pod('etcd'), pod('kube-apiserver', { hash: hashOf('bbbb2222'), revision: 2 })],
        runtime: [sandbox('etcd'), sandbox('kube-apiserver', { state: 'NOTREADY', sandboxId: 'sandbox-kube-apiserver-2' })],
      },
      90,
    )
    const [, unreachable, reachable] = rounds([ok, down, back])
    assert.deepEqual(summary(unreachable!), ['NODE_UNREACHABLE -/-'])
    assert.deepEqual(summary(reachable!), ['NODE_REACHABLE -/-', 'STATIC_POD_CHANGED kube-system/kube-apiserver', 'POD_NOT_READY kube-system/kube-apiserver'])
  })

  it('a flapping node: one event per transition', () => {
    const ok = observation()
    const all = rounds([ok, failed(ok), observation({}, 60), observation({}, 90), failed(observation({}, 90)), observation({}, 150)])
    assert.deepEqual(all.map(summary), [[], ['NODE_UNREACHABLE -/-'], ['NODE_REACHABLE -/-'], [], ['NODE_UNREACHABLE -/-'], ['NODE_REACHABLE -/-']])
  })
})

describe('observationEvents: manifests', () => {
  it('STATIC_POD_ADDED, _CHANGED and _REMOVED with their hashes, the actor from actorOf, and actorOf asked only for those', () => {
    const before = observation({ pods: [pod('etcd'), pod('kube-apiserver'), pod('kube-scheduler')] })
    const changed = pod('kube-apiserver', { hash: hashOf('bbbb2222'), revision: 2, managed: true })
    const added = pod('kube-controller-manager', { hash: hashOf('cccc3333'), managed: true })
    const after = observation({
      pods: [pod('etcd'), added, changed],
      runtime: [sandbox('etcd'), sandbox('kube-apiserver'), sandbox('kube-scheduler')],
    })
    const ctx = context({ 'changed kube-system/kube-apiserver': 'alice', 'removed kube-system/kube-scheduler': 'bob' })
    const events = observationEvents({ ...before, runtime: [sandbox('etcd'), sandbox('kube-apiserver'), sandbox('kube-scheduler')] }, after, ctx)
    assert.deepEqual(events, [
      {
        at: instant(60),
        type: 'STATIC_POD_CHANGED',
        node: 'cp-1',
        namespace: 'kube-system',
        name: 'kube-apiserver',
        message: 'kube-system/kube-apiserver changed by alice (kube-apiserver.yaml, sha256:aaaa1111… → sha256:bbbb2222…)',
        fromHash: hashOf('aaaa1111'),
        toHash: hashOf('bbbb2222'),
        actor: 'alice',
      },
      {
        at: instant(60),
        type: 'STATIC_POD_ADDED',
        node: 'cp-1',
        namespace: 'kube-system',
        name: 'kube-controller-manager',
        message: 'kube-system/kube-controller-manager added on the node (kube-controller-manager.yaml, sha256:cccc3333…)',
        fromHash: null,
        toHash: hashOf('cccc3333'),
        actor: null,
      },
      {
        at: instant(60),
        type: 'STATIC_POD_REMOVED',
        node: 'cp-1',
        namespace: 'kube-system',
        name: 'kube-scheduler',
        message: 'kube-system/kube-scheduler removed by bob (kube-scheduler.yaml, was sha256:aaaa1111…)',
        fromHash: hashOf('aaaa1111'),
        toHash: null,
        actor: 'bob',
      },
    ])
    // The pod in next for added and changed, the one in previous for removed.
    assert.deepEqual(
      ctx.asked.map((a) => [a.change, a.pod]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
      [
        ['added', added],
        ['changed', changed],
        ['removed', pod('kube-scheduler')],
      ],
    )
  })

  it('a file renamed (same bytes) is a change: the kubelet recreates the pod', () => {
    const before = observation()
    const after = observation({ pods: [pod('etcd', { fileName: 'etcd.yml', revision: 2 }), pod('kube-apiserver')] })
    const events = observationEvents(before, after, context())
    assert.deepEqual(summary(events), ['STATIC_POD_CHANGED kube-system/etcd'])
    assert.equal(events[0]!.message, 'kube-system/etcd changed on the node (moved from etcd.yaml to etcd.yml)')
    assert.equal(events[0]!.fromHash, events[0]!.toHash)
  })

  it('keys pods by namespace and name: the same name in two namespaces is two pods', () => {
    const before = observation({ pods: [pod('web', { namespace: 'default' })], runtime: [] })
    const after = observation({ pods: [pod('web', { namespace: 'apps' })], runtime: [] })
    assert.deepEqual(summary(observationEvents(before, after, context())), ['STATIC_POD_ADDED apps/web', 'STATIC_POD_REMOVED default/web'])
  })
})

describe('observationEvents: readiness (the ready gauge rule)', () => {
  it('POD_NOT_READY when a container stops, naming it and how it ended; POD_READY when it runs again', () => {
    const ready = observation()
    const exited = withRuntime(
      observation({}, 30),
      'etcd',
      sandbox('etcd', { containers: [container('etcd', { state: 'TERMINATED', restartCount: 1, exitCode: 1, reason: 'Error' })] }),
    )
    const again = withRuntime(observation({}, 60), 'etcd', sandbox('etcd', { containers: [container('etcd', { restartCount: 1 })] }))
    const [, down, up] = rounds([ready, exited, again])
    assert.deepEqual(down, [
      {
        at: instant(30),
        type: 'POD_NOT_READY',
        node: 'cp-1',
        namespace: 'kube-system',
        name: 'etcd',
        message: 'kube-system/etcd is not ready: container etcd TERMINATED (exit code 1, Error)',
        fromHash: null,
        toHash: null,
        actor: null,
      },
    ])
    assert.deepEqual(summary(up!), ['POD_READY kube-system/etcd'])
    assert.equal(up![0]!.message, 'kube-system/etcd is ready (sandbox READY, 1 container running)')
  })

  it('POD_NOT_READY when the runtime no longer lists the sandbox while the manifest is still there', () => {
    const events = observationEvents(observation(), withRuntime(observation({}, 30), 'kube-apiserver', null), context())
    assert.deepEqual(summary(events), ['POD_NOT_READY kube-system/kube-apiserver'])
    assert.equal(events[0]!.message, 'kube-system/kube-apiserver is not ready: the container runtime lists no sandbox for it')
  })

  it('POD_NOT_READY for a sandbox NOTREADY, and for a running container the runtime calls unready', () => {
    const next = observation({
      runtime: [sandbox('etcd', { state: 'NOTREADY' }), sandbox('kube-apiserver', { containers: [container('kube-apiserver', { ready: false })] })],
    })
    const events = observationEvents(observation(), next, context())
    assert.deepEqual(
      events.map((e) => e.message),
      ['kube-system/etcd is not ready: sandbox NOTREADY', 'kube-system/kube-apiserver is not ready: container kube-apiserver not ready'],
    )
  })

  it('names at most three failing containers', () => {
    const names = ['a', 'b', 'c', 'd', 'e']
    const next = withRuntime(observation(), 'etcd', sandbox('etcd', { containers: names.map((n) => container(n, { state: 'CREATED' })) }))
    assert.equal(
      observationEvents(observation(), next, context())[0]!.message,
      'kube-system/etcd is not ready: container a CREATED, container b CREATED, container c CREATED, 2 more',
    )
  })

  it('a pod added and running in the same round: STATIC_POD_ADDED then POD_READY', () => {
    const next = observation({ pods: [...observation().pods, pod('kube-scheduler')], runtime: [...observation().runtime!, sandbox('kube-scheduler')] })
    assert.deepEqual(summary(observationEvents(observation(), next, context())), ['STATIC_POD_ADDED kube-system/kube-scheduler', 'POD_READY kube-system/kube-scheduler'])
  })

  it('a pod added but not running yet: STATIC_POD_ADDED, then POD_READY in the round it comes up, then nothing', () => {
    const added = observation({ pods: [...observation().pods, pod('kube-scheduler')] }, 30)
    const up = { ...added, observedAt: instant(60), runtime: [...added.runtime!, sandbox('kube-scheduler')] }
    const all = rounds([observation(), added, up, { ...up, observedAt: instant(90) }])
    assert.deepEqual(all.map(summary), [[], ['STATIC_POD_ADDED kube-system/kube-scheduler'], ['POD_READY kube-system/kube-scheduler'], []])
  })

  it('a new pod is not ready before, even where the previous observation had no runtime', () => {
    const before = observation({ runtime: null, runtimeUnavailableReason: 'crictl: not found' })
    const next = observation({ pods: [...observation().pods, pod('kube-scheduler')], runtime: [...observation().runtime!, sandbox('kube-scheduler')] })
    assert.deepEqual(summary(observationEvents(before, next, context())), ['STATIC_POD_ADDED kube-system/kube-scheduler', 'POD_READY kube-system/kube-scheduler'])
  })

  it('judges nothing where either observation has no runtime: the runtime coming back is no POD_READY for pods running all along', () => {
    const noRuntime = observation({ runtime: null, runtimeUnavailableReason: 'crictl: not found' }, 30)
    const all = rounds([observation(), noRuntime, observation({}, 60)])
    assert.deepEqual(all, [[], [], []])
  })

  it('a pod removed gives STATIC_POD_REMOVED only, not POD_NOT_READY', () => {
    const next = observation({ pods: [pod('etcd')], runtime: [sandbox('etcd')] })
    assert.deepEqual(summary(observationEvents(observation(), next, context())), ['STATIC_POD_REMOVED kube-system/kube-apiserver'])
  })

  it('a pod changed and restarted by the kubelet: CHANGED, NOT_READY, then READY on the new sandbox', () => {
    const changed = observation({ pods: [pod('etcd'), pod('kube-apiserver', { hash: hashOf('bbbb2222') })] }, 30)
    const starting = withRuntime({ ...changed, observedAt: instant(60) }, 'kube-apiserver', sandbox('kube-apiserver', { state: 'NOTREADY', sandboxId: 'sandbox-kube-apiserver-2', containers: [] }))
    const started = withRuntime({ ...changed, observedAt: instant(90) }, 'kube-apiserver', sandbox('kube-apiserver', { sandboxId: 'sandbox-kube-apiserver-2' }))
    const all = rounds([observation(), changed, starting, started])
    assert.deepEqual(all.map(summary), [
      [],
      // The write path stores the old runtime state with the new file: still ready.
      ['STATIC_POD_CHANGED kube-system/kube-apiserver'],
      ['POD_NOT_READY kube-system/kube-apiserver'],
      ['POD_READY kube-system/kube-apiserver'],
    ])
  })

  it('isPodReady and runtimeOfPod (domain.ts) are the rule: READY sandbox, containers, every one RUNNING and not unready', () => {
    assert.equal(isPodReady(null), false)
    assert.equal(isPodReady(sandbox('x')), true)
    assert.equal(isPodReady(sandbox('x', { containers: [container('x', { ready: true })] })), true)
    assert.equal(isPodReady(sandbox('x', { containers: [container('x', { ready: false })] })), false)
    assert.equal(isPodReady(sandbox('x', { containers: [] })), false)
    assert.equal(isPodReady(sandbox('x', { state: 'NOTREADY' })), false)
    assert.equal(isPodReady(sandbox('x', { containers: [container('x'), container('y', { state: 'CREATED' })] })), false)
    const obs = observation()
    assert.equal(runtimeOfPod(obs, { namespace: 'kube-system', name: 'etcd' }), obs.runtime![0])
    assert.equal(runtimeOfPod(obs, { namespace: 'default', name: 'etcd' }), null)
    assert.equal(runtimeOfPod({ ...obs, runtime: null }, { namespace: 'kube-system', name: 'etcd' }), null)
  })
})

describe('observationEvents: CRASH_LOOP', () => {
  const etcd = (restartCount: number | null, overrides: Partial<ContainerRuntimeState> = {}, sandboxId = 'sandbox-etcd-1'): PodRuntimeState =>
    sandbox('etcd', { sandboxId, containers: [container('etcd', { restartCount, state: 'TERMINATED', ...overrides })] })
  const at = (runtime: PodRuntimeState, i: number): NodeObservation => withRuntime(observation({}, i * 30), 'etcd', runtime)

  it('once when a container reaches 3 restarts, naming the container, the restarts and how it last ended', () => {
    const all = rounds([at(etcd(1), 0), at(etcd(2), 1), at(etcd(3, { exitCode: 137, reason: 'OOMKilled' }), 2), at(etcd(4), 3), at(etcd(7), 4)])
    const crashes = all.map((events) => events.filter((e) => e.type === 'CRASH_LOOP'))
    assert.deepEqual(crashes.map((c) => c.length), [0, 0, 1, 0, 0])
    assert.deepEqual(crashes[2]![0], {
      at: instant(60),
      type: 'CRASH_LOOP',
      node: 'cp-1',
      namespace: 'kube-system',
      name: 'etcd',
      message: 'kube-system/etcd: container etcd has restarted 3 times (last: exit code 137, OOMKilled)',
      fromHash: null,
      toHash: null,
      actor: null,
    })
  })

  it('takes how the attempt before ended when the current one runs', () => {
    const looping = etcd(3, { state: 'RUNNING', lastTermination: { exitCode: 1, reason: 'Error', finishedAt: instant(50) } })
    const events = observationEvents(at(etcd(2), 0), at(looping, 1), context())
    assert.deepEqual(summary(events), ['POD_READY kube-system/etcd', 'CRASH_LOOP kube-system/etcd'])
    assert.equal(events[1]!.message, 'kube-system/etcd: container etcd has restarted 3 times (last: exit code 1, Error)')
  })

  it('says nothing of an exit the runtime did not report', () => {
    const events = observationEvents(at(etcd(2), 0), at(etcd(3), 1), context())
    assert.equal(events.find((e) => e.type === 'CRASH_LOOP')!.message, 'kube-system/etcd: container etcd has restarted 3 times')
  })

  it('a new sandbox counts from 0: its own crash loop is a new event', () => {
    const all = rounds([at(etcd(5), 0), at(etcd(0, {}, 'sandbox-etcd-2'), 1), at(etcd(2, {}, 'sandbox-etcd-2'), 2), at(etcd(3, {}, 'sandbox-etcd-2'), 3), at(etcd(4, {}, 'sandbox-etcd-2'), 4)])
    assert.deepEqual(all.map((events) => events.filter((e) => e.type === 'CRASH_LOOP').length), [0, 0, 0, 1, 0])
  })

  it('a new sandbox already past the threshold when first seen is a new crash loop, even with more restarts than the old one had', () => {
    for (const [old, now] of [[5, 3], [3, 4], [3, 3]] as const) {
      const events = observationEvents(at(etcd(old), 0), at(etcd(now, {}, 'sandbox-etcd-2'), 1), context())
      assert.deepEqual(summary(events.filter((e) => e.type === 'CRASH_LOOP')), ['CRASH_LOOP kube-system/etcd'], `${old} -> ${now}`)
    }
    // The same sandbox: the loop goes on, already announced.
    assert.deepEqual(observationEvents(at(etcd(3), 0), at(etcd(4), 1), context()), [])
  })

  it('without sandbox ids (older observations), a restart count that went down is a new sandbox', () => {
    const old = (n: number): PodRuntimeState => {
      const { sandboxId: _id, sandboxCreatedAt: _created, ...rest } = etcd(n)
      return rest
    }
    assert.deepEqual(rounds([at(old(6), 0), at(old(7), 1), at(old(3), 2), at(old(4), 3)]).map((e) => e.filter((x) => x.type === 'CRASH_LOOP').length), [0, 0, 1, 0])
  })

  it('a pod that is new and already past the threshold', () => {
    const next = observation({ pods: [...observation().pods, pod('kube-scheduler')], runtime: [...observation().runtime!, sandbox('kube-scheduler', { containers: [container('kube-scheduler', { restartCount: 4 })] })] })
    assert.deepEqual(summary(observationEvents(observation(), next, context())), [
      'STATIC_POD_ADDED kube-system/kube-scheduler',
      'POD_READY kube-system/kube-scheduler',
      'CRASH_LOOP kube-system/kube-scheduler',
    ])
  })

  it('one event per container, in container name order', () => {
    const runtime = sandbox('etcd', { containers: [container('z-sidecar', { restartCount: 3 }), container('etcd', { restartCount: 2 }), container('a-init', { restartCount: 3 })] })
    const events = observationEvents(observation(), withRuntime(observation({}, 30), 'etcd', runtime), context())
    assert.deepEqual(
      events.map((e) => e.message),
      ['kube-system/etcd: container a-init has restarted 3 times', 'kube-system/etcd: container z-sidecar has restarted 3 times'],
    )
  })

  it('crashLoopRestarts sets the threshold', () => {
    const ctx = context({}, { crashLoopRestarts: 5 })
    const all = rounds([at(etcd(3), 0), at(etcd(4), 1), at(etcd(5), 2), at(etcd(6), 3)], ctx)
    assert.deepEqual(all.map((e) => e.filter((x) => x.type === 'CRASH_LOOP').length), [0, 0, 1, 0])
  })

  it('nothing for an unknown restart count, nor where the previous observation had no runtime, nor on a failed read', () => {
    assert.deepEqual(observationEvents(at(etcd(2), 0), at(etcd(null), 1), context()).filter((e) => e.type === 'CRASH_LOOP'), [])
    const noRuntime = observation({ runtime: null })
    assert.deepEqual(observationEvents(noRuntime, at(etcd(3), 1), context()), [])
    const looping = at(etcd(3), 1)
    assert.deepEqual(summary(observationEvents(at(etcd(2), 0), failed(looping), context())), ['NODE_UNREACHABLE -/-'])
  })

  it('only for static pods in the manifests, not other sandboxes the runtime lists', () => {
    const next = withRuntime(observation(), 'stray', sandbox('stray', { containers: [container('stray', { restartCount: 9 })] }))
    assert.deepEqual(observationEvents(observation(), next, context()), [])
  })
})

describe('observationEvents: findings', () => {
  it('FINDING_ADDED and FINDING_RESOLVED, keyed by code and file; a new message alone is the same finding', () => {
    const before = observation({ findings: [finding('STRAY_FILE', 'etcd.yaml.bak'), finding('SUBDIRECTORY', 'old', 'a directory')] })
    const after = observation({
      findings: [finding('STRAY_FILE', 'etcd.yaml.bak', 'reworded'), finding('UNPARSEABLE_FILE', 'broken.yaml', 'line 3: mapping values are not allowed here')],
    })
    const events = observationEvents(before, after, context())
    assert.deepEqual(
      events.map((e) => [e.type, e.namespace, e.name, e.message]),
      [
        ['FINDING_ADDED', null, null, 'UNPARSEABLE_FILE in broken.yaml: line 3: mapping values are not allowed here'],
        ['FINDING_RESOLVED', null, null, 'SUBDIRECTORY in old resolved (was: a directory)'],
      ],
    )
    assert.ok(events.every((e) => e.actor === null && e.fromHash === null && e.toHash === null))
  })

  it('about the pod whose manifest is the file, when there is one; the directory when the file is null', () => {
    const before = observation({ findings: [finding('API_REFERENCE_FORBIDDEN', 'kube-apiserver.yaml', 'serviceAccountName')] })
    const after = observation({ findings: [finding('SUBDIRECTORY', null, 'the directory is not readable')] })
    const events = observationEvents(before, after, context())
    assert.deepEqual(
      events.map((e) => [e.type, e.namespace, e.name, e.message]),
      [
        ['FINDING_RESOLVED', 'kube-system', 'kube-apiserver', 'API_REFERENCE_FORBIDDEN in kube-apiserver.yaml resolved (was: serviceAccountName)'],
        ['FINDING_ADDED', null, null, 'SUBDIRECTORY in the static pod directory: the directory is not readable'],
      ],
    )
  })

  it('a finding about a removed pod\'s file is still about that pod', () => {
    const before = observation({ findings: [finding('DUPLICATE_POD', 'etcd.yaml', 'etcd is also defined by etcd2.yaml')] })
    const after = observation({ pods: [pod('kube-apiserver')], runtime: [sandbox('kube-apiserver')] })
    assert.deepEqual(summary(observationEvents(before, after, context())), ['STATIC_POD_REMOVED kube-system/etcd', 'FINDING_RESOLVED kube-system/etcd'])
  })
})

describe('observationEvents: order and bounds', () => {
  it('node events first, then by namespace and name, then type; node findings last; the same whatever order the input lists', () => {
    const before = observation({
      pods: [pod('etcd'), pod('kube-apiserver'), pod('web', { namespace: 'apps' })],
      findings: [finding('STRAY_FILE', 'z.bak')],
    })
    const down = failed(before)
    const next = observation({
      pods: [pod('kube-apiserver', { hash: hashOf('bbbb2222') }), pod('etcd'), pod('a-pod', { namespace: 'kube-system' }), pod('web', { namespace: 'apps', hash: hashOf('cccc') })],
      runtime: [sandbox('etcd', { state: 'NOTREADY' }), sandbox('a-pod'), sandbox('kube-apiserver', { containers: [container('kube-apiserver', { restartCount: 3 })] })],
      findings: [finding('STRAY_FILE', 'a.bak'), finding('UNPARSEABLE_FILE', 'etcd.yaml')],
    })
    const expected = [
      'NODE_REACHABLE -/-',
      'STATIC_POD_CHANGED apps/web',
      'STATIC_POD_ADDED kube-system/a-pod',
      'POD_READY kube-system/a-pod',
      'POD_NOT_READY kube-system/etcd',
      'FINDING_ADDED kube-system/etcd',
      'STATIC_POD_CHANGED kube-system/kube-apiserver',
      'CRASH_LOOP kube-system/kube-apiserver',
      'FINDING_ADDED -/-',
      'FINDING_RESOLVED -/-',
    ]
    // apps/web is in neither runtime: not ready before or after, so no readiness event.
    assert.deepEqual(summary(observationEvents(down, next, context())), expected)
    const shuffled = { ...next, pods: [...next.pods].reverse(), runtime: [...next.runtime!].reverse(), findings: [...next.findings].reverse() }
    assert.deepEqual(observationEvents(down, shuffled, context()), observationEvents(down, next, context()))
  })

  it('every event has the context\'s time', () => {
    const next = observation({ pods: [pod('x')], runtime: [sandbox('x')] })
    const events = observationEvents(observation(), next, { ...context(), at: '2026-03-01T12:00:00.000Z' })
    assert.ok(events.length > 0)
    assert.ok(events.every((e) => e.at === '2026-03-01T12:00:00.000Z'))
  })

  it('a message is one line of at most 300 characters, whatever the node\'s files and errors hold', () => {
    const longError = `NODE_UNREACHABLE: ${'x'.repeat(5000)}`
    const down = observationEvents(observation(), failed(observation(), longError), context())[0]!
    assert.equal(down.message.length, 300)
    assert.ok(down.message.endsWith('…'))

    const evilFile = `evil\nfile\r\u202ename\u0007${'y'.repeat(400)}.yaml`
    const next = observation({
      pods: [...observation().pods, pod('evil', { fileName: evilFile })],
      findings: [finding('STRAY_FILE', evilFile, `line one\nline two ${'z'.repeat(1000)}`)],
    })
    const ctx = context({ 'added kube-system/evil': `mallory\n${'m'.repeat(1000)}` })
    for (const event of observationEvents(observation(), next, ctx)) {
      assert.ok(event.message.length <= 300, `${event.type}: ${event.message.length}`)
      // eslint-disable-next-line no-control-regex -- no control character may be left
      assert.doesNotMatch(event.message, /[\u0000-\u001f\u007f-\u009f\u202e]/)
    }
    const added = observationEvents(observation(), next, ctx).find((e) => e.type === 'STATIC_POD_ADDED')!
    assert.match(added.message, /^kube-system\/evil added by mallory m+… \(evil file name y+…, sha256:aaaa1111…\)$/)
    assert.equal(added.actor!.length, 256, 'the actor field is bounded too')
  })

  it('cuts namespace and name fields only when longer than any valid name', () => {
    const long = 'n'.repeat(300)
    const next = observation({ pods: [...observation().pods, pod(long, { namespace: 'ns' })], runtime: [] })
    const before = { ...observation(), runtime: [] }
    const event = observationEvents(before, next, context())[0]!
    assert.equal(event.name!.length, 253)
    assert.ok(event.name!.endsWith('…'))
    assert.equal(event.namespace, 'ns')
    assert.ok(event.message.length <= 300)
  })

  it('never splits a surrogate pair', () => {
    for (const lead of ['', 'x']) {
      const down = observationEvents(observation(), failed(observation(), lead + '😀'.repeat(200)), context())[0]!
      assert.ok(down.message.length <= 300 && down.message.length >= 298)
      assert.ok(down.message.endsWith('😀…'), down.message.slice(-4))
    }
  })
})
