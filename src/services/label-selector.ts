// Kubernetes label selectors (the same syntax as kubectl -l): equality
// (a=b, a==b, a!=b), sets (a in (x,y), a notin (x)), existence (a, !a),
// requirements joined by commas, all of which must hold.

import { ServiceError, quoteInput } from '../errors.ts'
import type { Label } from '../domain.ts'

type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'absent' }

export type LabelSelector = (labels: Label[]) => boolean

const KEY = String.raw`(?:[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?`
const VALUE = String.raw`(?:[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?`
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`)
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`)
const EXISTS = new RegExp(`^(!?)\\s*(${KEY})$`)
const VALUE_ONLY = new RegExp(`^${VALUE}$`)

/** Longer than any real selector (a key is at most 316 characters, a value 63), short enough to parse in no time. */
const MAX_LABEL_SELECTOR_LENGTH = 4096

export function parseLabelSelector(selector: string, field: string[] = ['labelSelector']): LabelSelector {
  if (selector.length > MAX_LABEL_SELECTOR_LENGTH) {
    throw new ServiceError('VALIDATION_FAILED', `the label selector is ${selector.length} characters long; at most ${MAX_LABEL_SELECTOR_LENGTH} are allowed`, field)
  }
  const requirements = splitRequirements(selector).map((text) => parseRequirement(text, field))
  return (labels) => {
    const byKey = new Map(labels.map((l) => [l.key, l.value]))
    return requirements.every((r) => matches(r, byKey))
  }
}

function matches(r: Requirement, labels: Map<string, string>): boolean {
  const value = labels.get(r.key)
  switch (r.op) {
    case 'exists':
      return value !== undefined
    case 'absent':
      return value === undefined
    case 'in':
      return value !== undefined && r.values.includes(value)
    case 'notin':
      return value === undefined || !r.values.includes(value)
  }
}

/** Commas separate requirements, except inside the parentheses of a set. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of selector) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += ch
  }
  parts.push(current)
  return parts.map((p) => p.trim()).filter((p) => p !== '')
}

function parseRequirement(text: string, field: string[]): Requirement {
  const eq = EQUALITY.exec(text)
  if (eq) {
    const [, key, op, value] = eq as unknown as [string, string, string, string]
    return { key, op: op === '!=' ? 'notin' : 'in', values: [value] }
  }
  const set = SET.exec(text)
  if (set) {
    const [, key, op, list] = set as unknown as [string, string, 'in' | 'notin', string]
    const values = list.split(',').map((v) => v.trim())
    if (values.some((v) => !VALUE_ONLY.test(v))) throw invalid(text, field)
    return { key, op, values }
  }
  const exists = EXISTS.exec(text)
  if (exists) {
    const [, bang, key] = exists as unknown as [string, string, string]
    return { key, op: bang ? 'absent' : 'exists' }
  }
  throw invalid(text, field)
}

function invalid(text: string, field: string[]): ServiceError {
  return new ServiceError(
    'VALIDATION_FAILED',
    `cannot parse label selector requirement ${quoteInput(text)}: expected key=value, key!=value, key in (a,b), key notin (a), key or !key`,
    field,
  )
}
