import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { structuredPatch } from 'diff'
import { isMap, isPair, isScalar, isSeq, parseDocument, type Node, type Pair, type YAMLMap, type YAMLSeq } from 'yaml'
import { ServiceError } from '../../src/errors.ts'
import { editInPlace } from '../../src/manifest/edit-in-place.ts'
import { parseManifest } from '../../src/manifest/parse.ts'
import { setRestartAnnotation } from '../../src/manifest/restart.ts'
import { etcdYaml, kubeApiserverYaml } from './fixtures.ts'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/edit-in-place/${name}`, import.meta.url), 'utf8')

const apiserver = fixture('kube-apiserver.yaml')
const etcd = fixture('etcd.yaml')
const scheduler = fixture('kube-scheduler.yaml')
const handWritten = fixture('hand-written.yaml')
/** `kubectl get pod -o json`'s layout: four spaces, one entry per line. */
const apiserverJson = `${JSON.stringify(parseManifest(apiserver).object, null, 4)}\n`

/** A mutable copy of the manifest's object, changed by `change`. */
function changed(text: string, change: (pod: any) => void): Record<string, unknown> {
  const pod = structuredClone(parseManifest(text).object) as any
  change(pod)
  return pod
}

function edit(text: string, change: (pod: any) => void): string {
  const target = changed(text, change)
  const out = editInPlace(text, target)
  assert.deepEqual(parseManifest(out).object, target)
  return out
}

interface Hunk {
  /** 1-based line of the input the hunk starts at; for lines only added, the line they go before. */
  line: number
  removed: string[]
  added: string[]
}

/** The lines that differ, hunk by hunk, without context. */
function hunks(before: string, after: string): Hunk[] {
  return structuredPatch('before', 'after', before, after, '', '', { context: 0 }).hunks.map((hunk) => ({
    line: hunk.oldStart,
    removed: hunk.lines.filter((line) => line.startsWith('-')).map((line) => line.slice(1)),
    added: hunk.lines.filter((line) => line.startsWith('+')).map((line) => line.slice(1)),
  }))
}

/** The hunks without their line numbers. */
function lineChanges(before: string, after: string): Array<Omit<Hunk, 'line'>> {
  return hunks(before, after).map(({ removed, added }) => ({ removed, added }))
}

const lineOf = (text: string, line: string): number => text.split('\n').indexOf(line) + 1

function refusal(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ServiceError, String(err))
    assert.equal(err.code, 'WRITE_FAILED')
    assert.match(err.message, pattern)
    return true
  }
}

describe('editInPlace: unchanged', () => {
  it('returns the very text when it already parses to the target', () => {
    for (const text of [apiserver, etcd, scheduler, handWritten, apiserverJson, kubeApiserverYaml, apiserver.replace(/\n/g, '\r\n')]) {
      assert.equal(editInPlace(text, parseManifest(text).object), text)
      // Key order is no change: the text keeps its own.
      const reordered = Object.fromEntries(Object.entries(parseManifest(text).object).reverse())
      assert.equal(editInPlace(text, reordered), text)
    }
  })

  it('leaves keys holding undefined out, as JSON does', () => {
    assert.equal(editInPlace(scheduler, { ...parseManifest(scheduler).object, extra: undefined }), scheduler)
  })
})

describe('editInPlace: kubeadm manifests', () => {
  it('changes the image line only, keeping its comment', () => {
    const out = edit(apiserver, (pod) => {
      pod.spec.containers[0].image = 'registry.k8s.io/kube-apiserver:v1.32.0'
    })
    assert.deepEqual(hunks(apiserver, out), [
      {
        line: lineOf(apiserver, '    image: registry.k8s.io/kube-apiserver:v1.31.3 # pinned until the 1.32 upgrade'),
        removed: ['    image: registry.k8s.io/kube-apiserver:v1.31.3 # pinned until the 1.32 upgrade'],
        added: ['    image: registry.k8s.io/kube-apiserver:v1.32.0 # pinned until the 1.32 upgrade'],
      },
    ])
  })

  it('changes a flag in place: one line', () => {
    const out = edit(apiserver, (pod) => {
      const command: string[] = pod.spec.containers[0].command
      command[command.indexOf('--advertise-address=10.0.0.11')] = '--advertise-address=10.0.0.12'
    })
    assert.deepEqual(lineChanges(apiserver, out), [{ removed: ['    - --advertise-address=10.0.0.11'], added: ['    - --advertise-address=10.0.0.12'] }])
  })

  it('appends a flag after the last one, and inserts one at its sorted place', () => {
    const appended = edit(apiserver, (pod) => {
      pod.spec.containers[0].command.push('--v=2')
    })
    assert.deepEqual(hunks(apiserver, appended), [
      { line: lineOf(apiserver, '    image: registry.k8s.io/kube-apiserver:v1.31.3 # pinned until the 1.32 upgrade'), removed: [], added: ['    - --v=2'] },
    ])

    const inserted = edit(apiserver, (pod) => {
      const command: string[] = pod.spec.containers[0].command
      command.splice(command.indexOf('--audit-log-path=/var/log/kubernetes/audit/audit.log'), 0, '--audit-log-maxbackup=10')
    })
    assert.ok(inserted.includes('    - --audit-log-maxage=30\n    - --audit-log-maxbackup=10\n    - --audit-log-path='))
    assert.deepEqual(lineChanges(apiserver, inserted), [{ removed: [], added: ['    - --audit-log-maxbackup=10'] }])
  })

  it('removes a flag, and the comment line before one stays', () => {
    const out = edit(apiserver, (pod) => {
      const command: string[] = pod.spec.containers[0].command
      command.splice(command.indexOf('--audit-log-maxage=30'), 1)
      command.splice(command.indexOf('--enable-bootstrap-token-auth=true'), 1)
    })
    assert.deepEqual(lineChanges(apiserver, out), [
      { removed: ['    - --audit-log-maxage=30'], added: [] },
      { removed: ['    - --enable-bootstrap-token-auth=true'], added: [] },
    ])
    assert.ok(out.includes('    - --allow-privileged=true\n    # audit logging: see runbook CP-7\n    - --audit-log-path='))
  })

  it('changes, removes and appends flags in one edit', () => {
    const out = edit(etcd, (pod) => {
      const command: string[] = pod.spec.containers[0].command
      command[command.indexOf('--snapshot-count=10000')] = '--snapshot-count=5000'
      command.splice(command.indexOf('--experimental-initial-corrupt-check=true'), 1)
      command.push('--quota-backend-bytes=8589934592')
    })
    assert.deepEqual(lineChanges(etcd, out), [
      { removed: ['    - --experimental-initial-corrupt-check=true'], added: [] },
      { removed: ['    - --snapshot-count=10000'], added: ['    - --snapshot-count=5000'] },
      { removed: [], added: ['    - --quota-backend-bytes=8589934592'] },
    ])
  })

  it('adds env to a container that has none: after its last key, sequences not indented as kubeadm writes them', () => {
    const out = edit(scheduler, (pod) => {
      pod.spec.containers[0].env = [
        { name: 'GOMAXPROCS', value: '2' },
        { name: 'GODEBUG', value: 'http2client=0' },
      ]
    })
    assert.deepEqual(hunks(scheduler, out), [
      {
        line: lineOf(scheduler, '  hostNetwork: true'),
        removed: [],
        added: ['    env:', '    - name: GOMAXPROCS', '      value: "2"', '    - name: GODEBUG', '      value: http2client=0'],
      },
    ])
  })

  it('adds an env var to a container that has some, in the file\'s own indentation', () => {
    const out = edit(handWritten, (pod) => {
      pod.spec.containers[0].env.push({ name: 'STATS_PORT', value: '8404' })
    })
    assert.deepEqual(hunks(handWritten, out), [
      { line: lineOf(handWritten, '          ports:'), removed: [], added: ['              - name: STATS_PORT', '                value: "8404"'] },
    ])
  })

  it('removes a volume and its volumeMount: their whole lines', () => {
    const out = edit(apiserver, (pod) => {
      pod.spec.volumes = pod.spec.volumes.filter((v: any) => v.name !== 'audit-log')
      pod.spec.containers[0].volumeMounts = pod.spec.containers[0].volumeMounts.filter((m: any) => m.name !== 'audit-log')
    })
    // (A line diff may show the removed volume shifted by a line: its lines repeat the next one's shape.)
    assert.equal(
      out,
      apiserver
        .replace('    - mountPath: /var/log/kubernetes/audit\n      name: audit-log\n', '')
        .replace('  - hostPath:\n      path: /var/log/kubernetes/audit\n      type: DirectoryOrCreate\n    name: audit-log\n', ''),
    )
    assert.equal(out.split('\n').length, apiserver.split('\n').length - 6)
  })

  it('edits one field of a volume found by its name, wherever it moved in the list', () => {
    const out = edit(etcd, (pod) => {
      const [certs, data] = pod.spec.volumes
      data.hostPath.path = '/mnt/nvme/etcd'
      pod.spec.volumes = [{ name: 'backup', hostPath: { path: '/var/backups/etcd', type: 'DirectoryOrCreate' } }, certs, data]
    })
    assert.deepEqual(lineChanges(etcd, out), [
      { removed: [], added: ['  - name: backup', '    hostPath:', '      path: /var/backups/etcd', '      type: DirectoryOrCreate'] },
      { removed: ['      path: /var/lib/etcd'], added: ['      path: /mnt/nvme/etcd'] },
    ])
    // Before the first item, after the comment above the list.
    assert.ok(out.includes('  # the data directory is on the local NVMe disk, never on NFS\n  volumes:\n  - name: backup\n'))
  })

  it('adds a container after the last one', () => {
    const out = edit(etcd, (pod) => {
      pod.spec.containers.push({
        name: 'etcd-backup',
        image: 'registry.k8s.io/etcd:3.5.15-0',
        command: ['/bin/sh', '-c', 'while true; do etcdctl snapshot save /backup/snap.db; sleep 3600; done'],
        resources: {},
        volumeMounts: [{ mountPath: '/backup', name: 'backup' }],
      })
    })
    assert.deepEqual(hunks(etcd, out), [
      {
        line: lineOf(etcd, '  hostNetwork: true'),
        removed: [],
        added: [
          '  - name: etcd-backup',
          '    image: registry.k8s.io/etcd:3.5.15-0',
          '    command:',
          '    - /bin/sh',
          '    - -c',
          '    - while true; do etcdctl snapshot save /backup/snap.db; sleep 3600; done',
          '    resources: {}',
          '    volumeMounts:',
          '    - mountPath: /backup',
          '      name: backup',
        ],
      },
    ])
  })

  it('adds a label after the last one', () => {
    const out = edit(apiserver, (pod) => {
      pod.metadata.labels['node-role.example.com/owner'] = 'platform'
    })
    assert.deepEqual(hunks(apiserver, out), [{ line: lineOf(apiserver, '  name: kube-apiserver'), removed: [], added: ['    node-role.example.com/owner: platform'] }])
  })

  it('removes a key a merge patch sets to null, and sets one to null', () => {
    const removed = editInPlace(apiserver, mergePatch(parseManifest(apiserver).object, { metadata: { creationTimestamp: null } }))
    assert.deepEqual(lineChanges(apiserver, removed), [{ removed: ['  creationTimestamp: null'], added: [] }])

    const nulled = edit(scheduler, (pod) => {
      pod.spec.priorityClassName = null
      pod.metadata.creationTimestamp = '2024-11-20T10:00:00Z'
    })
    assert.deepEqual(lineChanges(scheduler, nulled), [
      { removed: ['  creationTimestamp: null'], added: ['  creationTimestamp: "2024-11-20T10:00:00Z"'] },
      { removed: ['  priorityClassName: system-node-critical'], added: ['  priorityClassName: null'] },
    ])
  })

  it('removes the first key of a list item: the next key moves up after the dash', () => {
    const out = edit(scheduler, (pod) => {
      delete pod.spec.containers[0].command
      pod.spec.containers[0].args = ['--config=/etc/kubernetes/scheduler-config.yaml']
    })
    assert.deepEqual(lineChanges(scheduler, out), [
      {
        removed: [
          '  - command:',
          '    - kube-scheduler',
          '    - --authentication-kubeconfig=/etc/kubernetes/scheduler.conf',
          '    - --authorization-kubeconfig=/etc/kubernetes/scheduler.conf',
          '    - --bind-address=127.0.0.1',
          '    - --kubeconfig=/etc/kubernetes/scheduler.conf',
          '    - --leader-elect=true',
          '    image: registry.k8s.io/kube-scheduler:v1.31.3',
        ],
        added: ['  - image: registry.k8s.io/kube-scheduler:v1.31.3'],
      },
      { removed: [], added: ['    args:', '    - --config=/etc/kubernetes/scheduler-config.yaml'] },
    ])
  })

  it('keeps every comment', () => {
    const out = edit(handWritten, (pod) => {
      pod.metadata.name = 'api-lb-2'
      pod.spec.containers[0].image = 'haproxy:3.0'
      delete pod.metadata.labels.tier
    })
    const comments = (text: string): string[] => text.split('\n').filter((line) => line.includes('#'))
    assert.deepEqual(comments(out), comments(handWritten).map((line) => line.replace('haproxy:2.9', 'haproxy:3.0')))
    assert.deepEqual(lineChanges(handWritten, out), [
      { removed: ['    name: api-lb'], added: ['    name: api-lb-2'] },
      { removed: ["        tier: 'control-plane'"], added: [] },
      { removed: ['          image: haproxy:2.9   # LTS'], added: ['          image: haproxy:3.0   # LTS'] },
    ])
  })
})

describe('editInPlace: scalars', () => {
  it('quotes a string that would read as another type or as syntax, and leaves safe ones plain', () => {
    const out = edit(scheduler, (pod) => {
      Object.assign(pod.metadata.labels, {
        a: 'true',
        b: '8080',
        c: 'yes',
        d: '1.0',
        e: 'null',
        f: '0x1',
        g: 'key: value',
        h: 'text #not-a-comment',
        i: '- item',
        j: '',
        k: '2024-11-20',
        l: 'plain-value_1.2',
        m: 'with space',
        n: 42,
        o: false,
      })
    })
    assert.deepEqual(lineChanges(scheduler, out), [
      {
        removed: [],
        added: [
          '    a: "true"',
          '    b: "8080"',
          '    c: "yes"',
          '    d: "1.0"',
          '    e: "null"',
          '    f: "0x1"',
          '    g: "key: value"',
          '    h: "text #not-a-comment"',
          '    i: "- item"',
          '    j: ""',
          '    k: "2024-11-20"',
          '    l: plain-value_1.2',
          '    m: with space',
          // `n` is false to a YAML 1.1 reader (the kubelet's go-yaml), keys included.
          '    "n": 42',
          '    o: false',
        ],
      },
    ])
  })

  it('keeps the style of a changed string: plain, single- and double-quoted', () => {
    const out = edit(handWritten, (pod) => {
      pod.metadata.labels.app = 'lb'
      pod.metadata.labels.tier = "it's"
      pod.spec.containers[0].ports[0].name = 'true'
      pod.spec.containers[0].env[0].value = '8192'
    })
    assert.deepEqual(lineChanges(handWritten, out), [
      { removed: ['        app: "api-lb"', "        tier: 'control-plane'"], added: ['        app: "lb"', "        tier: 'it''s'"] },
      { removed: ['                value: "4096"'], added: ['                value: "8192"'] },
      { removed: ['                name: https'], added: ['                name: "true"'] },
    ])
  })

  it('writes a number as a number, whatever the style of the string it replaces', () => {
    const out = edit(handWritten, (pod) => {
      pod.spec.containers[0].env[0].value = 4096
      pod.metadata.labels.app = null
    })
    assert.deepEqual(lineChanges(handWritten, out), [
      { removed: ['        app: "api-lb"'], added: ['        app: null'] },
      { removed: ['                value: "4096"'], added: ['                value: 4096'] },
    ])
  })

  it('rewrites a block scalar at its indentation: only the lines that changed', () => {
    const out = edit(handWritten, (pod) => {
      pod.metadata.annotations.description = 'Local load balancer for the API servers.\nReload it after changing the upstreams.\nOwned by the platform team.\n'
    })
    assert.deepEqual(lineChanges(handWritten, out), [
      {
        removed: ['            Restart it after changing the upstreams.'],
        added: ['            Reload it after changing the upstreams.', '            Owned by the platform team.'],
      },
    ])

    const stripped = edit(handWritten, (pod) => {
      pod.metadata.annotations.description = 'One line, no line break'
    })
    assert.deepEqual(lineChanges(handWritten, stripped), [
      {
        removed: ['        description: |', '            Local load balancer for the API servers.', '            Restart it after changing the upstreams.'],
        added: ['        description: |-', '            One line, no line break'],
      },
    ])
  })

  it('turns a block scalar into a plain value, and a folded one stays folded', () => {
    const plain = edit(handWritten, (pod) => {
      pod.metadata.annotations.description = 7
    })
    assert.deepEqual(lineChanges(handWritten, plain), [
      {
        removed: ['        description: |', '            Local load balancer for the API servers.', '            Restart it after changing the upstreams.'],
        added: ['        description: 7'],
      },
    ])
    const folded = 'apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    note: >\n      first\n      line\n  name: web\n'
    const out = edit(folded, (pod) => {
      pod.metadata.annotations.note = 'first line\nsecond\n'
    })
    assert.equal(out, 'apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    note: >\n      first line\n\n      second\n  name: web\n')
  })

  it('writes a string with line breaks as one double-quoted line in place of a plain one', () => {
    const out = edit(scheduler, (pod) => {
      pod.spec.priorityClassName = 'a\nb'
    })
    assert.deepEqual(lineChanges(scheduler, out), [{ removed: ['  priorityClassName: system-node-critical'], added: ['  priorityClassName: "a\\nb"'] }])
  })

  it('fills an empty value, before a comment on its line', () => {
    const text = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: # default\nspec:\n  nodeName:\n'
    const out = edit(text, (pod) => {
      pod.metadata.namespace = 'kube-system'
      pod.spec.nodeName = 'cp-1'
    })
    assert.equal(out, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: kube-system # default\nspec:\n  nodeName: cp-1\n')
  })
})

describe('editInPlace: flow collections', () => {
  it('`status: {}` gains a key in flow style, and YAML flow lists follow their quoting', () => {
    const out = edit(handWritten, (pod) => {
      pod.status = { phase: 'Running' }
      pod.spec.containers[0].args.push('-W')
      pod.spec.tolerations.push({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' })
    })
    assert.ok(out.endsWith('              type: Directory\nstatus:\n    phase: Running\n'))
    assert.ok(out.includes('          args: ["-f", "/usr/local/etc/haproxy/haproxy.cfg", "-W"]\n'))
    assert.ok(out.includes('    tolerations: [{operator: Exists}, {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]\n'))

    const withStatus = edit(etcd, (pod) => {
      pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] }
    })
    assert.deepEqual(lineChanges(etcd, withStatus), [
      { removed: ['status: {}'], added: ['status: {phase: Running, conditions: [{type: Ready, status: "True"}]}'] },
    ])
  })

  it('removes flow entries with one comma, and empties a flow list', () => {
    const text = 'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {a: b}}\nspec:\n  containers:\n  - {name: app, image: nginx, args: [x, y, z]}\n'
    const out = edit(text, (pod) => {
      delete pod.metadata.namespace
      delete pod.metadata.labels
      pod.spec.containers[0].args = ['y']
    })
    assert.equal(out, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: nginx, args: [y]}\n')
    const emptied = edit(text, (pod) => {
      pod.spec.containers[0].args = []
      pod.metadata.labels = {}
    })
    assert.equal(emptied, text.replace('{a: b}', '{}').replace('[x, y, z]', '[]'))
  })
})

describe('editInPlace: JSON manifests', () => {
  it('changes a value: one line', () => {
    const out = edit(apiserverJson, (pod) => {
      pod.spec.containers[0].image = 'registry.k8s.io/kube-apiserver:v1.32.0'
    })
    assert.deepEqual(lineChanges(apiserverJson, out), [
      { removed: ['                "image": "registry.k8s.io/kube-apiserver:v1.31.3",'], added: ['                "image": "registry.k8s.io/kube-apiserver:v1.32.0",'] },
    ])
  })

  it('adds keys on their own lines at the file\'s indentation, nested values laid out as JSON.stringify does', () => {
    const out = edit(apiserverJson, (pod) => {
      pod.metadata.labels.team = 'platform'
      pod.spec.containers[0].env = [{ name: 'GOMAXPROCS', value: '4' }]
      pod.spec.containers[0].command.push('--v=2')
    })
    assert.equal(
      out,
      apiserverJson
        .replace('            "tier": "control-plane"\n', '            "tier": "control-plane",\n            "team": "platform"\n')
        .replace(
          '                    "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key"\n                ],\n',
          '                    "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",\n                    "--v=2"\n                ],\n',
        )
        .replace(
          '                    }\n                ]\n            }\n        ],\n        "hostNetwork"',
          '                    }\n                ],\n                "env": [\n                    {\n                        "name": "GOMAXPROCS",\n                        "value": "4"\n                    }\n                ]\n            }\n        ],\n        "hostNetwork"',
        ),
    )
    JSON.parse(out)
  })

  it('removes keys and items with their comma', () => {
    const out = edit(apiserverJson, (pod) => {
      delete pod.metadata.creationTimestamp
      delete pod.metadata.namespace
      pod.spec.volumes.pop()
    })
    assert.deepEqual(lineChanges(apiserverJson, out), [
      { removed: ['        "creationTimestamp": null,'], added: [] },
      { removed: ['        "name": "kube-apiserver",', '        "namespace": "kube-system"'], added: ['        "name": "kube-apiserver"'] },
      {
        removed: [
          '            },',
          '            {',
          '                "hostPath": {',
          '                    "path": "/usr/share/ca-certificates",',
          '                    "type": "DirectoryOrCreate"',
          '                },',
          '                "name": "usr-share-ca-certificates"',
        ],
        added: [],
      },
    ])
    JSON.parse(out)
  })

  it('expands an empty object on lines of its own; stays on one line in one-line JSON', () => {
    const out = edit(apiserverJson, (pod) => {
      pod.status = { phase: 'Running' }
    })
    assert.deepEqual(lineChanges(apiserverJson, out), [{ removed: ['    "status": {}'], added: ['    "status": {', '        "phase": "Running"', '    }'] }])

    const oneLine = JSON.stringify(parseManifest(scheduler).object)
    const compact = edit(oneLine, (pod) => {
      pod.status = { phase: 'Running' }
      pod.metadata.labels.team = 'platform'
    })
    assert.equal(compact, oneLine.replace('"status":{}', '"status":{"phase": "Running"}').replace('"tier":"control-plane"', '"tier":"control-plane", "team": "platform"'))
  })
})

describe('editInPlace: the text around the edits', () => {
  it('keeps CRLF line endings, also on new lines', () => {
    const crlf = etcd.replace(/\n/g, '\r\n')
    const change = (pod: any): void => {
      pod.metadata.labels.team = 'platform'
      pod.spec.containers[0].command.push('--v=2')
      delete pod.metadata.creationTimestamp
      pod.spec.containers[0].resources.limits = { memory: '2Gi' }
    }
    const out = edit(crlf, change)
    assert.equal(out, edit(etcd, change).replace(/\n/g, '\r\n'))
    assert.ok(!/[^\r]\n/.test(out))
  })

  it('keeps a BOM, a leading document marker, and a missing final newline', () => {
    const text = `\ufeff---\n${scheduler.trimEnd()}`
    const out = edit(text, (pod) => {
      pod.status = { phase: 'Running' }
      pod.metadata.labels.team = 'platform'
    })
    assert.equal(out, `\ufeff---\n${scheduler.trimEnd().replace('status: {}', 'status: {phase: Running}').replace('    tier: control-plane\n', '    tier: control-plane\n    team: platform\n')}`)

    const bom = `\ufeff${scheduler.trimEnd()}`
    const removedLast = edit(bom, (pod) => {
      delete pod.status
      pod.spec.nodeName = 'cp-1'
    })
    assert.equal(removedLast, `\ufeff${scheduler.trimEnd().replace('\nstatus: {}', '\n  nodeName: cp-1')}`)
    assert.ok(!removedLast.endsWith('\n'))
    assert.ok(removedLast.startsWith('\ufeffapiVersion: v1\n'))
  })

  it('changes a value\'s type: the value is written anew at its place', () => {
    const out = edit(scheduler, (pod) => {
      pod.spec.hostNetwork = { enabled: true }
      pod.spec.containers[0].resources = 'none'
      pod.spec.securityContext.seccompProfile = ['RuntimeDefault']
    })
    assert.deepEqual(lineChanges(scheduler, out), [
      { removed: ['    resources:', '      requests:', '        cpu: 100m'], added: ['    resources: none'] },
      { removed: ['  hostNetwork: true'], added: ['  hostNetwork:', '    enabled: true'] },
      { removed: ['      type: RuntimeDefault'], added: ['    - RuntimeDefault'] },
    ])
  })

  it('writes a mapping that lost all its keys as {}', () => {
    const out = edit(scheduler, (pod) => {
      pod.metadata.labels = {}
      pod.spec.containers[0].volumeMounts = []
    })
    assert.deepEqual(lineChanges(scheduler, out), [
      { removed: ['  labels:', '    component: kube-scheduler', '    tier: control-plane'], added: ['  labels: {}'] },
      { removed: ['    volumeMounts:', '    - mountPath: /etc/kubernetes/scheduler.conf', '      name: kubeconfig', '      readOnly: true'], added: ['    volumeMounts: []'] },
    ])
  })

  it('is what setRestartAnnotation does for a new annotation', () => {
    const timestamp = '2024-11-20T10:00:00.000Z'
    for (const text of [etcdYaml, kubeApiserverYaml, apiserverJson]) {
      const restarted = setRestartAnnotation(text, timestamp)
      assert.equal(editInPlace(text, parseManifest(restarted).object), restarted)
    }
  })
})

describe('editInPlace: refusals', () => {
  const anchored = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: &labels
    app: web
spec:
  containers:
  - name: app
    image: &image nginx:1.27
  - name: sidecar
    image: *image
  nodeSelector: {disk: ssd}
x-common: &common
  restartPolicy: Always
`

  it('refuses an edit that touches an alias, saying where, and allows one that does not', () => {
    assert.throws(
      () => editInPlace(anchored, changed(anchored, (pod) => (pod.spec.containers[1].image = 'busybox'))),
      refusal(/^Cannot edit in place: spec\.containers\[1\]\.image is an alias \(\*image\) \(line 12\); replace the whole manifest with updateStaticPod\.$/),
    )
    const out = edit(anchored, (pod) => {
      pod.metadata.name = 'web-2'
      pod.spec.nodeSelector.zone = 'a'
    })
    assert.deepEqual(lineChanges(anchored, out), [
      { removed: ['  name: web'], added: ['  name: web-2'] },
      { removed: ['  nodeSelector: {disk: ssd}'], added: ['  nodeSelector: {disk: ssd, zone: a}'] },
    ])
  })

  it('refuses to change an anchored node, or remove one an alias may use', () => {
    assert.throws(() => editInPlace(anchored, changed(anchored, (pod) => (pod.spec.containers[0].image = 'nginx:1.28'))), refusal(/spec\.containers\[0\]\.image has an anchor \(&image\)/))
    assert.throws(() => editInPlace(anchored, changed(anchored, (pod) => (pod.metadata.labels.tier = 'web'))), refusal(/metadata\.labels has an anchor \(&labels\)/))
    assert.throws(() => editInPlace(anchored, changed(anchored, (pod) => pod.spec.containers.splice(0, 1))), refusal(/holds an anchor \(&image\)/))
  })

  it('refuses merge keys and tags in the way, and complex keys', () => {
    const merged = 'apiVersion: v1\nkind: Pod\nx: &m {namespace: default}\nmetadata:\n  <<: *m\n  name: web\n'
    assert.throws(() => editInPlace(merged, changed(merged, (pod) => (pod.metadata.name = 'web-2'))), refusal(/metadata is a mapping with a merge key/))
    const tagged = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: !!str web\n'
    assert.throws(() => editInPlace(tagged, changed(tagged, (pod) => (pod.metadata.name = 'api'))), refusal(/metadata\.name has a tag \(tag:yaml\.org,2002:str\)/))
    const complex = 'apiVersion: v1\nkind: Pod\nmetadata:\n  ? [a, b]\n  : c\n  name: web\n'
    assert.throws(() => editInPlace(complex, changed(complex, (pod) => (pod.metadata.name = 'api'))), refusal(/metadata is a mapping with a complex key/))
  })

  it('refuses a target that is not JSON data', () => {
    assert.throws(() => editInPlace(scheduler, changed(scheduler, (pod) => (pod.metadata.when = new Date(0)))), refusal(/metadata\.when is not JSON data \(Date\)/))
    assert.throws(() => editInPlace(scheduler, changed(scheduler, (pod) => (pod.spec.priority = Number.NaN))), refusal(/spec\.priority is not JSON data \(NaN\)/))
  })
})

// ---- the property: any edit parses to its target and leaves the lines away from it as they were

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Path = Array<string | number>
type Op = { kind: 'set' | 'delete' | 'remove'; path: Path } | { kind: 'add' | 'insert'; path: Path; at: number }

const STRINGS = ['v2', 'true', '8080', 'yes', 'a: b', 'x #y', '', ' lead', 'two\nlines', "it's", '-dash', '{x}', '*star', '0x1F', '~', 'é', '--flag=value', 'kube-system']
const KEYS = ['added', 'team', 'true', '8080', 'a b', 'kubeadm.kubernetes.io/x', 'on']

function randomValue(next: () => number, depth = 0): unknown {
  const pick = Math.floor(next() * (depth > 1 ? 5 : 9))
  switch (pick) {
    case 0:
    case 1:
      return STRINGS[Math.floor(next() * STRINGS.length)]
    case 2:
      return Math.floor(next() * 10000)
    case 3:
      return next() < 0.5
    case 4:
      return null
    case 5:
      return { name: `n${Math.floor(next() * 100)}`, value: randomValue(next, depth + 1) }
    case 6:
      return [randomValue(next, depth + 1), randomValue(next, depth + 1)]
    case 7:
      return next() < 0.5 ? {} : []
    default:
      return [{ name: 'x', mountPath: `/m${Math.floor(next() * 100)}` }]
  }
}

function walk(value: unknown, path: Path, out: Array<{ path: Path; value: unknown }>): void {
  out.push({ path, value })
  if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, i], out))
  else if (value !== null && typeof value === 'object') for (const [key, inner] of Object.entries(value)) walk(inner, [...path, key], out)
}

const isPrefix = (a: Path, b: Path): boolean => a.length <= b.length && a.every((part, i) => part === b[i])

/** Up to `count` independent edits (no one inside another's part) of a copy of `object`. */
function randomEdits(object: Record<string, unknown>, next: () => number, count: number): { target: Record<string, unknown>; ops: Op[] } {
  const target = structuredClone(object)
  const places: Array<{ path: Path; value: unknown }> = []
  walk(target, [], places)
  const claimed: Path[] = []
  const ops: Op[] = []
  for (let attempt = 0; attempt < 50 && ops.length < count; attempt++) {
    const { path, value } = places[Math.floor(next() * places.length)]!
    const parentPath = path.slice(0, -1)
    const parent = path.length === 0 ? undefined : (parentPath.reduce<any>((v, k) => v[k], target) as unknown)
    const last = path[path.length - 1]
    const options: Op[] = []
    if (Array.isArray(value)) options.push({ kind: 'insert', path, at: Math.floor(next() * (value.length + 1)) })
    else if (value !== null && typeof value === 'object') options.push({ kind: 'add', path, at: 0 })
    if (parent !== undefined) {
      // A list item's merge key is its identity: changing or removing it makes a new item, written whole, not an edit in one place.
      const identity = typeof last === 'string' && Array.isArray(path.length > 1 ? parentPath.slice(0, -1).reduce<any>((v, k) => v[k], target) : undefined) && ['name', 'mountPath', 'containerPort', 'ip'].includes(last)
      if (!identity) options.push({ kind: 'set', path })
      if (Array.isArray(parent)) options.push({ kind: 'remove', path })
      else if (!identity && (path.length > 1 || Object.keys(target).length > 3)) options.push({ kind: 'delete', path })
    }
    if (options.length === 0) continue
    const op = options[Math.floor(next() * options.length)]!
    // Inserting into or removing from a list shifts its indices, and removing keys may empty a mapping: the whole collection is that op's.
    const claim = op.kind === 'remove' || op.kind === 'delete' ? parentPath : path
    if (claimed.some((other) => isPrefix(other, claim) || isPrefix(claim, other))) continue
    claimed.push(claim)
    ops.push(op)
  }
  // Applied after choosing, so every path names the object as it was.
  for (const op of ops) {
    const container = (op.kind === 'add' || op.kind === 'insert' ? op.path : op.path.slice(0, -1)).reduce<any>((v, k) => v[k], target)
    const key = op.path[op.path.length - 1]!
    if (op.kind === 'set') container[key] = randomValue(next)
    else if (op.kind === 'delete') delete container[key]
    else if (op.kind === 'remove') container.splice(key, 1)
    else if (op.kind === 'insert') container.splice(op.at, 0, randomValue(next))
    else container[`${KEYS[Math.floor(next() * KEYS.length)]!}-${ops.indexOf(op)}`] = randomValue(next)
  }
  return { target, ops }
}

/** The input lines an op may change (0-based, inclusive), from the input's own parse. */
function linesOf(text: string, op: Op): [number, number] | undefined {
  const doc = parseDocument(text)
  const lineAt = (offset: number): number => text.slice(0, offset).split('\n').length - 1
  const lastLine = (end: number): number => {
    let i = end - 1
    while (i > 0 && /\s/.test(text[i]!)) i--
    return lineAt(i)
  }
  const containerPath = op.kind === 'add' || op.kind === 'insert' ? op.path : op.path.slice(0, -1)
  const container = (containerPath.length === 0 ? doc.contents : doc.getIn(containerPath, true)) as YAMLMap | YAMLSeq
  const items = container.items as Array<Pair | Node>
  const start = (item: Pair | Node): number => (isPair(item) ? (item.key as Node).range![0] : item.range![0])
  const end = (item: Pair | Node): number => (isPair(item) ? ((item.value as Node | null)?.range ?? (item.key as Node).range!)[1] : item.range![1])
  let index: number
  if (op.kind === 'add') index = items.length
  else if (op.kind === 'insert') index = op.at
  else index = isMap(container) ? items.findIndex((pair) => isScalar((pair as Pair).key) && String(((pair as Pair).key as any).value) === op.path[op.path.length - 1]) : (op.path[op.path.length - 1] as number)

  if (container.flow) {
    // A comma after the entry before, or the brackets of an empty collection.
    const [open, close] = [container.range![0], container.range![1] - 1]
    const before = index > 0 ? lineAt(end(items[index - 1]!)) : lineAt(open)
    const afterIndex = op.kind === 'add' || op.kind === 'insert' ? index : index + 1
    const after = afterIndex < items.length ? lineAt(start(items[afterIndex]!)) : lineAt(close)
    return [before, after]
  }
  if (op.kind === 'add' || op.kind === 'insert') return undefined
  if (items.length === 1 && op.kind !== 'set' && containerPath.length > 0) {
    // The last entry gone: the collection is written `{}` / `[]` on its key's line.
    return linesOf(text, { kind: 'set', path: containerPath })
  }
  const item = items[index]!
  let from = lineAt(start(item))
  const to = lastLine(end(item))
  if (isSeq(container)) {
    // From the dash.
    from = lineAt(text.lastIndexOf('-', start(item)))
  }
  const first = text.slice(text.lastIndexOf('\n', start(item) - 1) + 1, start(item))
  // The first key of a list item (`- name:`) removed: the next key moves up onto the dash's line.
  return /^\s*$/.test(first) || isSeq(container) ? [from, to] : [from, to + 1]
}

/** Whether `lines` appear in `out` in order. */
function inOrder(lines: string[], out: string[]): string | undefined {
  let k = 0
  for (const line of out) if (k < lines.length && line === lines[k]) k++
  return k === lines.length ? undefined : lines[k]
}

describe('editInPlace: random edits of real manifests', () => {
  const texts: Record<string, string> = {
    'kube-apiserver.yaml': apiserver,
    'etcd.yaml': etcd,
    'kube-scheduler.yaml': scheduler,
    'hand-written.yaml': handWritten,
    'kube-apiserver.json': apiserverJson,
    'etcd.yaml (CRLF)': etcd.replace(/\n/g, '\r\n'),
    'fixtures.ts kube-apiserver (v1.30)': kubeApiserverYaml,
  }
  for (const [name, text] of Object.entries(texts)) {
    it(`${name}: the result parses to the target; lines away from the edits stay, in order`, () => {
      const object = parseManifest(text).object
      const inputLines = text.split(/\r?\n/)
      for (let seed = 1; seed <= 40; seed++) {
        const next = random(seed * 7919 + name.length)
        const { target, ops } = randomEdits(object, next, 1 + Math.floor(next() * 4))
        const context = `${name}, seed ${seed}: ${JSON.stringify(ops)}`
        const out = editInPlace(text, target)
        assert.deepEqual(parseManifest(out).object, target, context)
        assert.equal(editInPlace(out, target), out, context)
        const near = new Set<number>()
        for (const op of ops) {
          const span = linesOf(text, op)
          if (span) for (let line = span[0]; line <= span[1]; line++) near.add(line)
        }
        const kept = inputLines.filter((_line, i) => !near.has(i))
        const missing = inOrder(kept, out.split(/\r?\n/))
        assert.equal(missing, undefined, `${context}: the line ${JSON.stringify(missing)} is gone or out of order`)
        if (text.includes('\r\n')) assert.ok(!/[^\r]\n/.test(out), `${context}: a bare LF`)
      }
    })
  }
})

/** RFC 7386: what an operator's merge patch makes of the manifest. */
function mergePatch(target: unknown, patch: unknown): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key]
    else out[key] = mergePatch(out[key], value)
  }
  return out
}
