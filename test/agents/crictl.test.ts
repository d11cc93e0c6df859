// parseCrictl on output shaped like real crictl's (see test/support/crictl-fixture.ts).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CrictlOutputError, parseCrictl } from '../../src/agents/crictl.ts'
import { container, controlPlaneFixture, sandbox } from '../support/crictl-fixture.ts'

const now = new Date('2024-06-10T07:00:00.000Z')
const print = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`
/** Without crictl inspect's answer (test/agents/diagnostics.test.ts has it): no exit codes or times. */
const NOT_INSPECTED = { exitCode: null, reason: null, message: null, startedAt: null, finishedAt: null }

test('the static pods of the node, from the newest sandbox of each, with their newest containers', () => {
  const { sandboxes, containers } = controlPlaneFixture()
  const pods = parseCrictl(print({ items: sandboxes }), print({ containers }), 'CP-1', now)
  assert.deepEqual(pods, [
    {
      namespace: 'kube-system',
      name: 'etcd',
      state: 'READY',
      containers: [{ name: 'etcd', image: 'registry.k8s.io/etcd:3.5.12-0', state: 'RUNNING', ready: null, restartCount: 0, containerId: 'ad'.repeat(32), attempt: 0, ...NOT_INSPECTED, lastTermination: null }],
      observedAt: '2024-06-10T07:00:00.000Z',
      // The newest sandbox: a write's new pod is told from the old one by this id.
      sandboxId: '3c'.repeat(32),
      sandboxCreatedAt: '2024-06-10T05:00:00.000Z',
    },
    {
      namespace: 'kube-system',
      name: 'kube-apiserver',
      state: 'READY',
      containers: [
        {
          name: 'kube-apiserver', image: 'registry.k8s.io/kube-apiserver:v1.30.2', state: 'RUNNING', ready: null, restartCount: 1, containerId: '9c'.repeat(32), attempt: 1, ...NOT_INSPECTED,
          // Attempt 0 is listed (exited), but only crictl inspect tells how it ended.
          lastTermination: { exitCode: null, reason: null, finishedAt: null },
        },
      ],
      observedAt: '2024-06-10T07:00:00.000Z',
      sandboxId: '2b'.repeat(32),
      sandboxCreatedAt: '2024-06-10T06:13:21.000Z',
    },
    {
      namespace: 'kube-system',
      name: 'kube-scheduler',
      state: 'READY',
      containers: [
        { name: 'kube-scheduler', image: 'registry.k8s.io/kube-scheduler:v1.30.2', state: 'CREATED', ready: null, restartCount: 0, containerId: 'be'.repeat(32), attempt: 0, ...NOT_INSPECTED, lastTermination: null },
      ],
      observedAt: '2024-06-10T07:00:00.000Z',
      sandboxId: '4d'.repeat(32),
      sandboxCreatedAt: '2024-06-10T05:00:01.000Z',
    },
  ])
})

test('sandbox and container states map to the service names; anything else is UNKNOWN', () => {
  const pod = sandbox({ podName: 'web-cp-1', namespace: 'apps', id: '11', state: 'SANDBOX_NOTREADY', createdAt: '2024-06-10T06:00:00Z' })
  const states = ['CONTAINER_RUNNING', 'CONTAINER_EXITED', 'CONTAINER_CREATED', 'CONTAINER_UNKNOWN']
  const containers = states.map((state, i) =>
    container({ name: `c${i}`, sandbox: pod, id: `2${i}`, state, createdAt: '2024-06-10T06:00:01Z', image: 'nginx:1.27' }),
  )
  const [web] = parseCrictl(print({ items: [pod] }), print({ containers }), 'cp-1', now)
  assert.equal(web?.name, 'web')
  assert.equal(web?.state, 'NOTREADY')
  assert.deepEqual(web?.containers.map((c) => c.state), ['RUNNING', 'TERMINATED', 'CREATED', 'UNKNOWN'])

  const odd = { ...pod, state: 'SANDBOX_SOMETHING_NEW' }
  assert.equal(parseCrictl(print({ items: [odd] }), print({ containers: [] }), 'cp-1', now)[0]?.state, 'UNKNOWN')
})

test('a node name with dashes and capitals: only the -<node> suffix is stripped', () => {
  const pod = sandbox({ podName: 'my-app-worker-a-1', namespace: 'default', id: '31', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:00:00Z' })
  const onlySuffix = sandbox({ podName: '-worker-a-1', namespace: 'default', id: '32', state: 'SANDBOX_READY', createdAt: '2024-06-10T06:00:00Z' })
  const pods = parseCrictl(print({ items: [pod, onlySuffix] }), print({ containers: [] }), 'Worker-A-1', now)
  assert.deepEqual(pods.map((p) => p.name), ['my-app'])
})

test('crictl printing no items at all (an empty node, or older crictl omitting the key)', () => {
  assert.deepEqual(parseCrictl('{"items": []}', '{"containers": []}', 'cp-1', now), [])
  assert.deepEqual(parseCrictl('{}', '{}', 'cp-1', now), [])
})

test('output that is not crictl JSON is an error that says which command', () => {
  assert.throws(() => parseCrictl('time="x" level=fatal msg="connect: no such file"', '{}', 'cp-1', now), (err: unknown) => {
    assert.ok(err instanceof CrictlOutputError)
    assert.match(err.message, /crictl pods did not print JSON/)
    return true
  })
  assert.throws(() => parseCrictl('{}', '{"containers": [{"id": 7}]}', 'cp-1', now), /crictl ps printed JSON of an unexpected shape at containers\.0\.id/)
})
