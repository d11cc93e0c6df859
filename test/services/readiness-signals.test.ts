// The readiness signals, pure: the new sandbox from the runtime, the mirror
// pod from the API server, how they combine, and image names as runtimes report them.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { MirrorPodView } from '../../src/cluster/mirror-pods.ts'
import { decideReadiness, mirrorSignal, normalizeImage, runtimeSignal, sameImage } from '../../src/services/readiness-signals.ts'
import type { PodRuntimeState } from '../../src/domain.ts'

const expected = [{ name: 'main', image: 'nginx:1.27', init: false }]
const pod = (over: Partial<PodRuntimeState> = {}): PodRuntimeState => ({
  namespace: 'default',
  name: 'web',
  state: 'READY',
  containers: [{ name: 'main', image: 'docker.io/library/nginx:1.27', state: 'RUNNING', ready: null, restartCount: 0 }],
  observedAt: '2024-06-10T07:00:00.000Z',
  sandboxId: 'new',
  sandboxCreatedAt: '2024-06-10T06:59:59.000Z',
  ...over,
})
const mirror = (over: Partial<MirrorPodView> = {}): MirrorPodView => ({
  uid: 'u',
  namespace: 'default',
  name: 'web-n1',
  nodeName: 'n1',
  phase: 'Running',
  ready: true,
  configHash: 'h2',
  configSource: 'file',
  createdAt: null,
  containers: [{ name: 'main', image: 'docker.io/library/nginx:1.27', state: 'RUNNING', ready: true, restartCount: 0 }],
  specContainers: [{ name: 'main', image: 'nginx:1.27', init: false }],
  ...over,
})

describe('runtime signal', () => {
  it('ready only for a sandbox other than the one before the write, READY, every container RUNNING with its image', () => {
    assert.equal(runtimeSignal(pod(), expected, 'old').verdict, 'ready')
    assert.equal(runtimeSignal(pod(), expected, null).verdict, 'ready', 'no pod before: any sandbox is new')
    assert.deepEqual(runtimeSignal(pod({ sandboxId: 'old' }), expected, 'old'), { verdict: 'waiting', detail: 'container runtime: still the sandbox from before the write' })
    assert.equal(runtimeSignal(undefined, expected, 'old').verdict, 'waiting')
    assert.equal(runtimeSignal(pod({ state: 'NOTREADY' }), expected, 'old').verdict, 'waiting')
    const created = pod({ containers: [{ name: 'main', image: 'nginx:1.27', state: 'CREATED', ready: null, restartCount: 0 }] })
    assert.deepEqual(runtimeSignal(created, expected, 'old'), { verdict: 'waiting', detail: 'container runtime: container main CREATED' })
    const oldImage = pod({ containers: [{ name: 'main', image: 'docker.io/library/nginx:1.26', state: 'RUNNING', ready: null, restartCount: 0 }] })
    assert.match(runtimeSignal(oldImage, expected, 'old').detail, /runs docker.io\/library\/nginx:1.26, not nginx:1.27/)
    assert.equal(runtimeSignal(pod({ containers: [] }), expected, 'old').verdict, 'waiting')
  })

  it('crash-looping: a container of the new sandbox restarted 3 times', () => {
    const looping = pod({ containers: [{ name: 'main', image: 'nginx:1.27', state: 'TERMINATED', ready: null, restartCount: 3 }] })
    assert.deepEqual(runtimeSignal(looping, expected, 'old'), { verdict: 'crash-loop', detail: 'container runtime: container main restarted 3 times' })
    // The old sandbox's restarts say nothing about the new pod.
    assert.equal(runtimeSignal({ ...looping, sandboxId: 'old' }, expected, 'old').verdict, 'waiting')
  })

  it('unknown when the runtime could not be asked before the write', () => {
    assert.equal(runtimeSignal(pod(), expected, undefined).verdict, 'unknown')
  })
})

describe('mirror pod signal', () => {
  it('ready for a mirror pod of a new config hash, Ready, containers ready; not-ready when it shows the new pod unready', () => {
    assert.equal(mirrorSignal(mirror(), expected, 'h1').verdict, 'ready')
    assert.equal(mirrorSignal(mirror({ configHash: 'h1' }), expected, 'h1').verdict, 'waiting')
    assert.equal(mirrorSignal(null, expected, 'h1').verdict, 'waiting')
    assert.equal(mirrorSignal(mirror({ ready: false }), expected, 'h1').verdict, 'not-ready')
    const unready = mirror({ containers: [{ name: 'main', image: null, state: 'WAITING', ready: false, restartCount: 4 }] })
    assert.equal(mirrorSignal(unready, expected, 'h1').verdict, 'crash-loop')
    assert.equal(mirrorSignal(mirror(), expected, undefined).verdict, 'unknown')
  })
})

describe('combined', () => {
  const r = (verdict: 'ready' | 'crash-loop' | 'waiting' | 'not-ready' | 'unknown') => ({ verdict, detail: verdict })
  it('a crash loop on either side fails; a Ready mirror pod, or a ready runtime the mirror pod does not contradict, is ready', () => {
    assert.equal(decideReadiness(r('ready'), r('crash-loop')).verdict, 'crash-loop')
    assert.equal(decideReadiness(r('crash-loop'), r('ready')).verdict, 'crash-loop')
    assert.equal(decideReadiness(r('waiting'), r('ready')).verdict, 'ready')
    assert.equal(decideReadiness(r('ready'), r('unknown')).verdict, 'ready', 'API server down: the runtime decides')
    assert.equal(decideReadiness(r('ready'), r('waiting')).verdict, 'ready', 'mirror pod not posted yet')
    assert.equal(decideReadiness(r('ready'), r('not-ready')).verdict, 'waiting', 'a failing readiness probe holds it back')
    assert.equal(decideReadiness(r('unknown'), r('unknown')).verdict, 'waiting')
  })
})

describe('image names', () => {
  it('normalised as Docker does: registry, library/, latest', () => {
    assert.deepEqual(normalizeImage('nginx'), { name: 'docker.io/library/nginx', tag: 'latest', digest: null })
    assert.deepEqual(normalizeImage('bitnami/nginx:1.2'), { name: 'docker.io/bitnami/nginx', tag: '1.2', digest: null })
    assert.deepEqual(normalizeImage('localhost:5000/app'), { name: 'localhost:5000/app', tag: 'latest', digest: null })
    assert.deepEqual(normalizeImage('registry.k8s.io/etcd:3.5.15-0'), { name: 'registry.k8s.io/etcd', tag: '3.5.15-0', digest: null })
  })

  it('the same image however the runtime reports it', () => {
    assert.ok(sameImage('nginx:1.27', 'docker.io/library/nginx:1.27'))
    assert.ok(sameImage('nginx', 'docker.io/library/nginx:latest'))
    assert.ok(sameImage('nginx:1.27', 'index.docker.io/library/nginx:1.27'))
    assert.ok(sameImage('nginx:1.27', `sha256:${'a'.repeat(64)}`), 'an image id cannot be compared')
    assert.ok(sameImage('nginx:1.27', null))
    assert.ok(sameImage(`nginx@sha256:${'b'.repeat(64)}`, 'docker.io/library/nginx:1.27'), 'digest against tag cannot be compared')
    assert.ok(!sameImage('nginx:1.27', 'docker.io/library/nginx:1.26'))
    assert.ok(!sameImage('registry.k8s.io/etcd:3.5.15-0', 'docker.io/library/etcd:3.5.15-0'))
  })
})
