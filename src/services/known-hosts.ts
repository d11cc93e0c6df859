// importKnownHosts: pins the host keys of registered SSH nodes and jump hosts
// from an OpenSSH known_hosts document (src/net/known-hosts.ts reads it), the
// way an admin would one at a time with updateNode(hostKeyFingerprint) or
// putJumpHost, in one audited call.
//
// For each node and jump host (all SSH nodes the admin may see and, for an
// admin of all nodes, all jump hosts; or the ones named) the lines matching
// its host and port (as OpenSSH names them) give its keys, @revoked keys
// taken out. The payload names each by its name: a name registered both as a
// node and as a jump host is there once for each. Then, in this order:
// - pinned to a @revoked key: conflicts (kept; the @revoked line in
//   ignoredLines says which nodes are pinned to it);
// - no usable line: missing;
// - pinned already: unchanged when the pin is one of its keys in the
//   document, else conflicts (kept: updateNode changes a pin);
// - unpinned: the key of the first type of HOST_KEY_TYPES it has (ed25519,
//   then ECDSA, then RSA: the order ssh2 asks a node for, so the key the node
//   presents) is pinned. Two different keys of that type: nothing is pinned,
//   the node is missing, and ignoredLines names the lines.
// Nodes whose pin is set meanwhile by someone else keep it (conflicts or
// unchanged, by comparison).

import { setImmediate as nextTurn } from 'node:timers/promises'
import { sameFingerprint } from '../agents/host-key.ts'
import { mapWithConcurrency } from '../concurrency.ts'
import type { JumpHostRecord } from '../domain.ts'
import { ServiceError, quoteInput, type UserError } from '../errors.ts'
import { choosePin, KnownHostsIndex, knownHostsName, parseKnownHosts, type HostKeyLine, type RevokedKey } from '../net/known-hosts.ts'
import { authorize, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { NodeService } from './nodes.ts'

/** What the import needs of the jump host registry (services/jump-hosts.ts). */
export interface JumpHostPins {
  list(actor: Actor): Promise<JumpHostRecord[]>
  /** Pins it only while it has no pin; its pin now, and whether this call set it; null when it is gone. */
  pinHostKeyIfUnpinned(name: string, fingerprint: string): Promise<{ pinnedNow: boolean; hostKeyFingerprint: string } | null>
}

/** A node or a jump host, as far as pinning its key goes. */
interface Target {
  name: string
  host: string
  port: number
  hostKeyFingerprint: string | null
  pin(fingerprint: string): Promise<{ pinnedNow: boolean; hostKeyFingerprint: string } | null>
}

export interface ImportKnownHostsResult {
  pinned: string[]
  unchanged: string[]
  conflicts: string[]
  missing: string[]
  ignoredLines: string[]
  userErrors: UserError[]
}

/**
 * Hashed and wildcard lines are tried against every node's name (an HMAC-SHA1
 * each for a hashed one, ~3 µs): at most this many tries per call, about 3 s
 * of CPU, given back to the event loop between nodes. 300 nodes with three
 * hashed keys each are 270,000.
 */
const MAX_PATTERN_TRIES = 1_000_000
/** ignoredLines lists at most this many, then says how many more there were. */
const MAX_IGNORED_LINES_SHOWN = 1000
/** Pins written at once. */
const PIN_CONCURRENCY = 16

export class KnownHostsService {
  constructor(
    private readonly o: {
      nodes: NodeService
      jumpHosts: JumpHostPins
      audit: AuditService
      /** MAX_NODES_PER_REQUEST: the most names one call may give. */
      maxNodesPerRequest: number
    },
  ) {}

  importKnownHosts(knownHosts: string, names: readonly string[] | null | undefined, actor: Actor): Promise<ImportKnownHostsResult> {
    return this.o.audit.runMutation(
      { action: 'importKnownHosts', actor, requires: 'admin', node: null, dryRun: false },
      async (audit) => {
        const wanted = this.checkNames(names, actor)
        const doc = parseKnownHosts(knownHosts)
        const targets = await this.targets(wanted, actor)
        const index = new KnownHostsIndex(doc.keys)
        const hostNames = new Set(targets.map((n) => knownHostsName(n.host, n.port)))
        if (hostNames.size * index.slowLines > MAX_PATTERN_TRIES) {
          throw new ServiceError(
            'VALIDATION_FAILED',
            `knownHosts: ${index.slowLines} hashed or wildcard lines for ${hostNames.size} hosts is more than ${MAX_PATTERN_TRIES} tries; pass names, or import the document in parts`,
            ['knownHosts'],
          )
        }
        // Fingerprints of the document are all openSshFingerprint's (unpadded), so a set finds them.
        const revoked = new Set(doc.revoked.map((r) => r.fingerprint))

        const result: ImportKnownHostsResult = { pinned: [], unchanged: [], conflicts: [], missing: [], ignoredLines: [], userErrors: [] }
        const notes: Array<{ line: number; text: string }> = doc.ignored.map((i) => ({ line: i.line, text: `line ${i.line}: ${i.reason}` }))
        const pinnedToRevoked = new Map<RevokedKey, string[]>()
        const toPin: Array<{ node: Target; key: HostKeyLine; keys: HostKeyLine[] }> = []

        for (const [i, node] of targets.entries()) {
          // Hashed lines cost an HMAC per node: let other requests run in between.
          if (index.slowLines > 0 && i % 50 === 49) await nextTurn()
          const keys = index.lookup(knownHostsName(node.host, node.port)).filter((k) => !revoked.has(k.fingerprint))
          const pin = node.hostKeyFingerprint
          const revokedPin = pin === null ? undefined : doc.revoked.find((r) => sameFingerprint(r.fingerprint, pin))
          if (revokedPin) {
            pinnedToRevoked.set(revokedPin, [...(pinnedToRevoked.get(revokedPin) ?? []), node.name])
            result.conflicts.push(node.name)
          } else if (keys.length === 0) {
            result.missing.push(node.name)
          } else if (pin !== null) {
            ;(keys.some((k) => sameFingerprint(k.fingerprint, pin)) ? result.unchanged : result.conflicts).push(node.name)
          } else {
            const choice = choosePin(keys)
            if (choice.kind === 'one') {
              toPin.push({ node, key: choice.key, keys })
            } else {
              result.missing.push(node.name)
              if (choice.kind === 'ambiguous') {
                const lines = choice.keys.map((k) => k.line)
                notes.push({
                  line: lines[0] as number,
                  text: `lines ${lines.join(', ')}: different ${choice.keys[0]?.keyType} keys for ${node.name} (${choice.keys.map((k) => k.fingerprint).join(', ')}); none is pinned (updateNode or putJumpHost pins the right one)`,
                })
              }
            }
          }
        }

        const outcomes = await mapWithConcurrency(toPin, PIN_CONCURRENCY, async ({ node, key, keys }) => {
          const now = await node.pin(key.fingerprint)
          if (now === null) return 'gone' as const
          if (now.pinnedNow) return 'pinned' as const
          // Pinned by someone else since the list was read: compared like any pinned node.
          return keys.some((k) => sameFingerprint(k.fingerprint, now.hostKeyFingerprint)) ? ('unchanged' as const) : ('conflicts' as const)
        })
        outcomes.forEach((outcome, i) => {
          if (outcome !== 'gone') result[outcome].push((toPin[i] as (typeof toPin)[number]).node.name)
        })

        for (const key of doc.revoked) {
          const pinnedNodes = pinnedToRevoked.get(key) ?? []
          const pinnedNote = pinnedNodes.length === 0 ? '' : `; pinned to it now, kept and listed in conflicts (updateNode or putJumpHost changes a pin): ${pinnedNodes.join(', ')}`
          notes.push({ line: key.line, text: `line ${key.line}: @revoked ${key.keyType} ${key.fingerprint}: never pinned${pinnedNote}` })
        }
        notes.sort((a, b) => a.line - b.line)
        result.ignoredLines = notes.slice(0, MAX_IGNORED_LINES_SHOWN).map((n) => n.text)
        if (notes.length > MAX_IGNORED_LINES_SHOWN) result.ignoredLines.push(`… and ${notes.length - MAX_IGNORED_LINES_SHOWN} more lines not used`)
        for (const list of [result.pinned, result.unchanged, result.conflicts, result.missing]) list.sort()

        audit.message =
          `pinned ${result.pinned.length}, unchanged ${result.unchanged.length}, conflicts ${result.conflicts.length}, missing ${result.missing.length}, ignored lines ${notes.length}` +
          `; pinned: ${result.pinned.join(', ') || 'none'}; conflicts: ${result.conflicts.join(', ') || 'none'}; missing: ${result.missing.join(', ') || 'none'}`
        return result
      },
      (userErrors) => ({ pinned: [], unchanged: [], conflicts: [], missing: [], ignoredLines: [], userErrors }),
    )
  }

  /** The names asked for, bounded and each one the actor may use; null: every node the actor may see. */
  private checkNames(names: readonly string[] | null | undefined, actor: Actor): string[] | null {
    if (names === null || names === undefined) return null
    if (names.length > this.o.maxNodesPerRequest) {
      throw new ServiceError('VALIDATION_FAILED', `names: ${names.length} names; at most ${this.o.maxNodesPerRequest} at once (MAX_NODES_PER_REQUEST)`, ['names'])
    }
    for (const name of names) authorize(actor, 'admin', name)
    return [...new Set(names)]
  }

  /**
   * The SSH nodes and jump hosts the import is about, by name. Jump hosts only
   * for an admin of all nodes (services/jump-hosts.ts: a jump host carries
   * other nodes' connections too).
   */
  private async targets(wanted: string[] | null, actor: Actor): Promise<Target[]> {
    const [nodes, jumpHosts] = await Promise.all([this.o.nodes.list(actor), actor.nodes === null ? this.o.jumpHosts.list(actor) : []])
    const nodeTargets = nodes.flatMap((n): Target[] =>
      n.kind === 'ssh' ? [{ name: n.name, ...n.ssh, pin: (fingerprint) => this.o.nodes.pinHostKeyIfUnpinned(n.name, fingerprint) }] : [],
    )
    const jumpHostTargets = jumpHosts.map((j): Target => ({ ...j, pin: (fingerprint) => this.o.jumpHosts.pinHostKeyIfUnpinned(j.name, fingerprint) }))
    const all = [...nodeTargets, ...jumpHostTargets]
    const byName = (a: Target, b: Target): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    if (wanted === null) return all.sort(byName)
    const targets: Target[] = []
    for (const name of wanted) {
      const named = all.filter((t) => t.name === name)
      if (named.length === 0) {
        const local = nodes.find((n) => n.name === name)
        if (local) throw new ServiceError('VALIDATION_FAILED', `names: ${local.name} is the local node, which has no host key; nothing was pinned`, ['names'])
        throw new ServiceError('NOT_FOUND', `names: no node or jump host named ${quoteInput(name)} is registered (see the nodes and jumpHosts queries); nothing was pinned`, ['names'])
      }
      targets.push(...named)
    }
    return targets.sort(byName)
  }
}
