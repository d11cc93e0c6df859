// Who is calling, and what they may do. The one place for the rules of roles
// and node restrictions: every service checks through here, so GraphQL, REST
// and Lambda cannot differ.
//
// viewer: every query. operator: also static pod and mirror pod mutations.
// admin: also node mutations. A token may be limited to nodes matching globs;
// it then never sees other nodes, in lists either.

import { ServiceError, quoteInput } from '../errors.ts'

export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]

export interface Actor {
  /** Recorded as the actor of audit events and revisions. */
  name: string
  role: Role
  /** Globs of node names this actor may read or change; null: every node. */
  nodes: string[] | null
}

/** Every caller when no tokens are configured (loopback only). */
export const ANONYMOUS_ADMIN: Actor = { name: 'anonymous', role: 'admin', nodes: null }

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 }

export function hasRole(actor: Actor, needed: Role): boolean {
  return RANK[actor.role] >= RANK[needed]
}

export function canSeeNode(actor: Actor, node: string): boolean {
  return actor.nodes === null || actor.nodes.some((glob) => globToRegExp(glob).test(node))
}

/** Throws FORBIDDEN unless the actor has the role and, when a node is named, may use that node. */
export function authorize(actor: Actor, needed: Role, node?: string | null): void {
  if (!hasRole(actor, needed)) {
    throw new ServiceError('FORBIDDEN', `${actor.name} has the ${actor.role} role; this needs ${needed}`)
  }
  if (node !== undefined && node !== null && !canSeeNode(actor, node)) {
    throw new ServiceError('FORBIDDEN', `${actor.name} may not use node ${quoteInput(node)}`, ['node'])
  }
}

/** Whether a node name matches any of the globs (the same globs as a token's nodes; webhooks' node filters). */
export function matchesNodeGlobs(globs: readonly string[], node: string): boolean {
  return globs.some((glob) => globToRegExp(glob).test(node))
}

const globCache = new Map<string, RegExp>()

/** Shell-style globs on node names: * any run of characters, ? one character. */
function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob)
  if (!re) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
    re = new RegExp(`^${body}$`)
    globCache.set(glob, re)
  }
  return re
}
