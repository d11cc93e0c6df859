// Query limits: depth and the number of fields a query selects (fragments
// expanded). Introspection (__schema, __type) is not counted, so GraphiQL can
// always load the schema; a query that goes over either limit is refused
// before anything runs.

import { GraphQLError, Kind, type ASTVisitor, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext } from 'graphql'

export function queryLimits(limits: { maxDepth: number; maxFields: number; maxAliases: number; maxIntrospection: number; maxIntrospectionDepth: number }) {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>()
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition)
    }
    return {
      OperationDefinition(operation) {
        const { depth, fields } = measure(operation.selectionSet, fragments)
        if (depth > limits.maxDepth) {
          context.reportError(
            new GraphQLError(`the query is ${depth} levels deep; at most ${limits.maxDepth} are allowed`, {
              nodes: [operation],
              extensions: { code: 'QUERY_TOO_DEEP' },
            }),
          )
        }
        if (fields > limits.maxFields) {
          context.reportError(
            new GraphQLError(`the query selects ${fields} fields; at most ${limits.maxFields} are allowed`, {
              nodes: [operation],
              extensions: { code: 'QUERY_TOO_COMPLEX' },
            }),
          )
        }
      },
    }
  }
}

/** Depth and field count of a selection set; fragments expanded once per path (cycles are graphql's own error). */
function measure(set: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string> = new Set()): { depth: number; fields: number } {
  let depth = 0
  let fields = 0
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith('__')) continue
      fields += 1
      if (selection.selectionSet) {
        const inner = measure(selection.selectionSet, fragments, seen)
        depth = Math.max(depth, inner.depth + 1)
        fields += inner.fields
      } else depth = Math.max(depth, 1)
    } else {
      const inner =
        selection.kind === Kind.INLINE_FRAGMENT
          ? measure(selection.selectionSet, fragments, seen)
          : fragmentMeasure(selection.name.value, fragments, seen)
      depth = Math.max(depth, inner.depth)
      fields += inner.fields
    }
  }
  return { depth, fields }
}

function fragmentMeasure(name: string, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): { depth: number; fields: number } {
  const fragment = fragments.get(name)
  if (!fragment || seen.has(name)) return { depth: 0, fields: 0 }
  seen.add(name)
  const result = measure(fragment.selectionSet, fragments, seen)
  seen.delete(name)
  return result
}
