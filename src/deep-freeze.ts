/**
 * Freezes a value all the way down. For values shared between callers (parses
 * remembered for the next request, cached observations): a caller that tried
 * to change one fails at once instead of changing what the others see.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
