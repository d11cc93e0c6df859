// An SSH node's store record, for tests that put a node straight into the
// store (registering is not what they test, and it would add an audit event).

import type { NodeRecord } from '../../src/domain.ts'

export function sshNodeRecord(fields: Pick<NodeRecord, 'name' | 'host' | 'port' | 'user' | 'staticPodPath' | 'hostKeyFingerprint'>): NodeRecord {
  const now = new Date().toISOString()
  return { ...fields, kind: 'ssh', observedHostKeyFingerprint: null, labels: [], createdAt: now, updatedAt: now }
}
