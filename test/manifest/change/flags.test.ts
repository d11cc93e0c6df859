import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type FlagOutcome, flagProblem, flagValueProblem, setFlag } from '../../../src/manifest/change/flags.ts'

type Container = Record<string, unknown>

/** The container after setFlag, which must succeed. */
function set(container: Container, flag: string, value: string | null): Container {
  const copy = structuredClone(container)
  assert.deepEqual(setFlag(copy, flag, value), { ok: true })
  return copy
}

function outcome(container: Container, flag: string, value: string | null): FlagOutcome {
  return setFlag(structuredClone(container), flag, value)
}

const kubeadm = { name: 'kube-scheduler', command: ['kube-scheduler', '--bind-address=127.0.0.1', '--leader-elect=true'] }

describe('setFlag: a flag that is there', () => {
  it('replaces --flag=value where it stands', () => {
    assert.deepEqual(set(kubeadm, '--bind-address', '0.0.0.0').command, ['kube-scheduler', '--bind-address=0.0.0.0', '--leader-elect=true'])
    assert.deepEqual(set(kubeadm, '--leader-elect', '').command, ['kube-scheduler', '--bind-address=127.0.0.1', '--leader-elect='])
  })

  it('keeps a value that holds = and commas whole', () => {
    const c = { command: ['kube-apiserver', '--feature-gates=A=true'] }
    assert.deepEqual(set(c, '--feature-gates', 'A=true,B=false').command, ['kube-apiserver', '--feature-gates=A=true,B=false'])
  })

  it('replaces the value entry of the two-entry form', () => {
    const c = { command: ['etcd', '--name', 'cp-1', '--data-dir', '/var/lib/etcd'] }
    assert.deepEqual(set(c, '--name', 'cp-2').command, ['etcd', '--name', 'cp-2', '--data-dir', '/var/lib/etcd'])
    // A value that would read as a flag, or as nothing, goes into the flag's own entry.
    assert.deepEqual(set(c, '--name', '-1').command, ['etcd', '--name=-1', '--data-dir', '/var/lib/etcd'])
    assert.deepEqual(set(c, '--name', '').command, ['etcd', '--name=', '--data-dir', '/var/lib/etcd'])
  })

  it('reads the two-entry form across command and args', () => {
    const c = { command: ['app', '--config'], args: ['/etc/app.yaml', '--v=1'] }
    assert.deepEqual(set(c, '--config', '/etc/other.yaml'), { command: ['app', '--config'], args: ['/etc/other.yaml', '--v=1'] })
    assert.deepEqual(set(c, '--config', null), { command: ['app'], args: ['--v=1'] })
  })

  it('gives a boolean flag a value in place, whether another flag or nothing follows it', () => {
    const c = { args: ['--verbose', '--port=80', '--debug'] }
    assert.deepEqual(set(c, '--verbose', 'false').args, ['--verbose=false', '--port=80', '--debug'])
    assert.deepEqual(set(c, '--debug', 'true').args, ['--verbose', '--port=80', '--debug=true'])
  })

  it('is ambiguous when given more than once, naming where', () => {
    const c = { command: ['app', '--v=1'], args: ['--v', '2'] }
    assert.deepEqual(outcome(c, '--v', '3'), { ok: false, problem: 'ambiguous', where: ['command[1]', 'args[0]'] })
  })
})

describe('setFlag: removing', () => {
  it('removes every form, each entry of the two-entry one', () => {
    const c = { command: ['app', '--v=1', '--x', '--v', '2', '--y=1', '--v'] }
    assert.deepEqual(set(c, '--v', null).command, ['app', '--x', '--y=1'])
  })

  it('changes nothing for a flag that is not there, and does not create a list', () => {
    assert.deepEqual(set(kubeadm, '--nope', null), kubeadm)
    assert.deepEqual(set({ name: 'x' }, '--nope', null), { name: 'x' })
  })
})

describe('setFlag: a flag that is not there', () => {
  it('goes to args when the flags are there', () => {
    assert.deepEqual(set({ command: ['/app'], args: ['serve', '--port=80'] }, '--v', '2'), { command: ['/app'], args: ['serve', '--port=80', '--v=2'] })
  })

  it('goes to command when the flags are there, as kubeadm writes them', () => {
    assert.deepEqual(set({ command: ['kube-proxy', '--v=1'], args: [] }, '--x', '1'), { command: ['kube-proxy', '--v=1', '--x=1'], args: [] })
  })

  it('goes after the arguments there are: args, else a command that names its program', () => {
    assert.deepEqual(set({ command: ['/app'], args: ['serve'] }, '--v', '2'), { command: ['/app'], args: ['serve', '--v=2'] })
    assert.deepEqual(set({ args: [] }, '--v', '2'), { args: ['--v=2'] })
    assert.deepEqual(set({ command: ['/app'] }, '--v', '2'), { command: ['/app', '--v=2'] })
  })

  it('makes an args list when there is neither, so the image entrypoint stays', () => {
    assert.deepEqual(set({ name: 'x', image: 'y' }, '--v', '2'), { name: 'x', image: 'y', args: ['--v=2'] })
    assert.deepEqual(set({ command: [] }, '--v', '2'), { command: [], args: ['--v=2'] })
    assert.deepEqual(set({ command: null }, '--v', '2'), { command: null, args: ['--v=2'] })
  })

  it('goes before a -- that ends the flags, and finds no flag after it', () => {
    assert.deepEqual(set({ command: ['app', '--a=1', '--', '--v=1'] }, '--v', '2').command, ['app', '--a=1', '--v=2', '--', '--v=1'])
    assert.deepEqual(set({ command: ['app', '--'], args: ['--v=1'] }, '--v', null), { command: ['app', '--'], args: ['--v=1'] })
  })

  it('refuses to append to a shell script, which would take the flag as its own', () => {
    assert.deepEqual(outcome({ command: ['sh', '-c', 'exec app --a=1'] }, '--v', '2'), { ok: false, problem: 'shell', shell: 'sh' })
    assert.deepEqual(outcome({ command: ['/bin/bash', '-ec'], args: ['exec app'] }, '--v', '2'), { ok: false, problem: 'shell', shell: 'bash' })
    // Without a command, args[0] is not a program.
    assert.deepEqual(set({ args: ['sh', '-c'] }, '--v', '2').args, ['sh', '-c', '--v=2'])
  })
})

describe('setFlag: what it does not touch', () => {
  it('leaves entries that are not strings, and reads past them', () => {
    const c = { command: ['app', 7, '--v=1', { x: 1 }] }
    assert.deepEqual(set(c, '--v', '2').command, ['app', 7, '--v=2', { x: 1 }])
    assert.deepEqual(set({ command: ['app', '--n', 5] }, '--n', '6').command, ['app', '--n=6', 5])
  })

  it('says when command or args is not a list', () => {
    assert.deepEqual(outcome({ command: 'kube-apiserver --v=1' }, '--v', '2'), { ok: false, problem: 'not-a-list', list: 'command' })
    assert.deepEqual(outcome({ args: { v: 1 } }, '--v', '2'), { ok: false, problem: 'not-a-list', list: 'args' })
  })
})

describe('flag names and values', () => {
  it('wants two dashes and a bounded name', () => {
    for (const ok of ['--v', '--audit-log-maxage', '--tls-cipher-suites', '--a.b_c-d', '--0']) assert.equal(flagProblem(ok), null, ok)
    for (const bad of ['-v', 'v', '--', '---v', '--v=1', '-- v', '--é', `--${'a'.repeat(255)}`]) assert.ok(flagProblem(bad), bad)
  })

  it('wants a value on one line, bounded', () => {
    assert.equal(flagValueProblem(''), null)
    assert.equal(flagValueProblem('https://127.0.0.1:2379,https://10.0.0.1:2379'), null)
    assert.equal(flagValueProblem('x'.repeat(16 * 1024)), null)
    for (const bad of ['a\nb', 'a\rb', 'a\tb', '\u007f', 'x'.repeat(16 * 1024 + 1)]) assert.ok(flagValueProblem(bad), JSON.stringify(bad.slice(0, 5)))
  })
})
