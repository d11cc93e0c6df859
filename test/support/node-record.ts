// An SSH node's store record, for tests that put a node straight into the
// store (registering is not what they test, and it would add an audit event).

import type { SshNodeRecord } from '../../src/domain.ts'

export function sshNodeRecord(fields: {
  name: string
  host: string
  port: number
  user: string
  staticPodPath: string
  hostKeyFingerprint: string | null
  labels?: SshNodeRecord['labels']
}): SshNodeRecord {
  const now = new Date().toISOString()
  const { name, host, port, user, staticPodPath, hostKeyFingerprint, labels = [] } = fields
  return {
    name,
    kind: 'ssh',
    ssh: { host, port, user, privilege: 'NONE', sftpServer: null, via: null, hostKeyFingerprint, observedHostKeyFingerprint: null },
    staticPodPath,
    staticPodPathFrom: 'given',
    labels,
    createdAt: now,
    updatedAt: now,
  }
}
