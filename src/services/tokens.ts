// Bearer tokens. The tokens document holds only SHA-256 hashes; a presented
// token is hashed and compared in constant time against every entry, so
// neither the tokens nor which entry matched leak through timing.

import { createHash, timingSafeEqual } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import * as z from 'zod'
import { ROLES, type Actor } from './actor.ts'

const tokenEntrySchema = z.object({
  name: z.string().min(1).max(128).regex(/^[\w.@:-]+$/, 'letters, digits and . _ - @ : only (it is recorded as the audit actor)'),
  role: z.enum(ROLES),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'must be the hex SHA-256 of the token (64 hex digits), never the token itself')
    .transform((h) => h.toLowerCase()),
  nodes: z.array(z.string().min(1).max(253)).min(1).optional(),
})

const tokensDocumentSchema = z.object({
  tokens: z
    .array(tokenEntrySchema)
    .min(1)
    .refine((ts) => new Set(ts.map((t) => t.name)).size === ts.length, 'token names must be unique (they name the actor)')
    .refine((ts) => new Set(ts.map((t) => t.sha256)).size === ts.length, 'two entries have the same hash'),
})

export type TokenEntry = z.infer<typeof tokenEntrySchema>

/** Parses the tokens document (YAML or JSON); throws an Error whose message is one line. */
export function parseTokensDocument(text: string): TokenEntry[] {
  let raw: unknown
  try {
    raw = parseYaml(text, { uniqueKeys: true, maxAliasCount: 0 })
  } catch (err) {
    // No cause: the parser's error quotes the document, which holds the tokens.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`not valid YAML or JSON (${firstLine(err)})`)
  }
  // Parsed once per start (or reload): zod's compiled fast path would be compiled to run once.
  const parsed = tokensDocumentSchema.safeParse(raw, { jitless: true })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new Error(`${issue?.path.join('.') || 'document'}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data.tokens
}

export class TokenAuthenticator {
  private readonly entries: Array<{ hash: Buffer; actor: Actor }>

  constructor(entries: TokenEntry[]) {
    this.entries = entries.map((e) => ({
      hash: Buffer.from(e.sha256, 'hex'),
      actor: { name: e.name, role: e.role, nodes: e.nodes ?? null },
    }))
  }

  /** The actor of a presented token, or null. Compares against every entry, always. */
  authenticate(token: string): Actor | null {
    const presented = createHash('sha256').update(token, 'utf8').digest()
    let found: Actor | null = null
    for (const entry of this.entries) {
      if (timingSafeEqual(presented, entry.hash) && found === null) found = entry.actor
    }
    return found
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''
}
