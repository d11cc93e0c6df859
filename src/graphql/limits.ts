// Query cost limits, checked while the query is validated, before anything
// runs: depth, the number of fields selected (fragments expanded), aliases,
// and introspection. Every field counts, introspection included: a query of
// 1,000 aliased __schema selections once cost 47 MB of answer. Introspection
// has a cap of its own (how many __schema/__type selections, how deep inside
// them), sized so that GraphiQL's own introspection query passes.

import { GraphQLError, Kind, type ASTVisitor, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext } from 'graphql'

export interface QueryLimits {
  maxDepth: number
  maxFields: number
  maxAliases: number
  /** __schema and __type selections per operation. */
  maxIntrospection: number
  /** Depth of the deepest introspection selection, counted from the operation. */
  maxIntrospectionDepth: number
}

/** What an operation selects, fragments expanded. */
export interface QueryCost {
  /** Deepest field outside introspection. */
  depth: number
  /** Deepest field under __schema / __type. */
  introspectionDepth: number
  fields: number
  aliases: number
  introspections: number
}

const INTROSPECTION_ROOTS = new Set(['__schema', '__type'])

export function queryLimits(limits: QueryLimits) {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>()
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition)
    }
    return {
      OperationDefinition(operation) {
        const cost = measureSelections(operation.selectionSet, fragments)
        const refuse = (code: string, message: string) =>
          context.reportError(new GraphQLError(message, { nodes: [operation], extensions: { code } }))
        if (cost.depth > limits.maxDepth) refuse('QUERY_TOO_DEEP', `the query is ${cost.depth} levels deep; at most ${limits.maxDepth} are allowed`)
        if (cost.introspectionDepth > limits.maxIntrospectionDepth) {
          refuse('QUERY_TOO_DEEP', `the query's introspection is ${cost.introspectionDepth} levels deep; at most ${limits.maxIntrospectionDepth} are allowed`)
        }
        if (cost.fields > limits.maxFields) refuse('QUERY_TOO_COMPLEX', `the query selects ${cost.fields} fields; at most ${limits.maxFields} are allowed`)
        if (cost.aliases > limits.maxAliases) refuse('QUERY_TOO_COMPLEX', `the query uses ${cost.aliases} aliases; at most ${limits.maxAliases} are allowed`)
        if (cost.introspections > limits.maxIntrospection) {
          refuse('QUERY_TOO_COMPLEX', `the query selects __schema or __type ${cost.introspections} times; at most ${limits.maxIntrospection} are allowed`)
        }
      },
    }
  }
}

/**
 * The cost of a selection set. A fragment counts wherever it is spread (that
 * is what execution does: 10 spreads of a 100-field fragment are 1,000
 * fields), but is walked once: its cost is remembered, so nested spreads
 * cannot make this walk exponential. A fragment spread inside itself is
 * graphql's own validation error and counts once here.
 */
function measureSelections(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>): QueryCost {
  const memo = new Map<string, QueryCost>()
  const walk = (selections: SelectionSetNode, inIntrospection: boolean, seen: ReadonlySet<string>): QueryCost => {
    const cost: QueryCost = { depth: 0, introspectionDepth: 0, fields: 0, aliases: 0, introspections: 0 }
    const sum = (inner: QueryCost): void => {
      cost.fields += inner.fields
      cost.aliases += inner.aliases
      cost.introspections += inner.introspections
    }
    for (const selection of selections.selections) {
      if (selection.kind === Kind.FIELD) {
        const root = INTROSPECTION_ROOTS.has(selection.name.value)
        const introspective = inIntrospection || root
        const inner = selection.selectionSet ? walk(selection.selectionSet, introspective, seen) : ZERO
        sum(inner)
        cost.fields += 1
        if (selection.alias) cost.aliases += 1
        if (root) cost.introspections += 1
        if (introspective) cost.introspectionDepth = Math.max(cost.introspectionDepth, 1 + inner.introspectionDepth)
        else {
          cost.depth = Math.max(cost.depth, 1 + inner.depth)
          if (inner.introspectionDepth > 0) cost.introspectionDepth = Math.max(cost.introspectionDepth, 1 + inner.introspectionDepth)
        }
        continue
      }
      let inner: QueryCost
      if (selection.kind === Kind.INLINE_FRAGMENT) inner = walk(selection.selectionSet, inIntrospection, seen)
      else {
        const name = selection.name.value
        const fragment = fragments.get(name)
        if (!fragment || seen.has(name)) continue
        const key = `${inIntrospection ? 'i' : 'q'}:${name}`
        inner = memo.get(key) ?? walk(fragment.selectionSet, inIntrospection, new Set([...seen, name]))
        memo.set(key, inner)
      }
      sum(inner)
      cost.depth = Math.max(cost.depth, inner.depth)
      cost.introspectionDepth = Math.max(cost.introspectionDepth, inner.introspectionDepth)
    }
    return cost
  }
  return walk(set, false, new Set())
}

const ZERO: QueryCost = Object.freeze({ depth: 0, introspectionDepth: 0, fields: 0, aliases: 0, introspections: 0 })
