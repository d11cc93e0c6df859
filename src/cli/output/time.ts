// Ages as kubectl prints them (k8s.io/apimachinery/pkg/util/duration.HumanDuration),
// durations as kubectl's flags take them (10m, 1h30m, 90s), and "now".

/**
 * Now. Under the test runner (NODE_ENV=test), STATICPODCTL_NOW (RFC 3339)
 * stands for it, so that the AGE columns of golden tables do not move; it is
 * not honoured anywhere else.
 */
export function now(env: NodeJS.ProcessEnv = process.env): number {
  const fixed = env.NODE_ENV === 'test' ? env.STATICPODCTL_NOW : undefined
  const at = fixed ? Date.parse(fixed) : NaN
  return Number.isNaN(at) ? Date.now() : at
}

/** kubectl's HumanDuration of the time since at; '<unknown>' without one. */
export function age(at: string | null | undefined, nowMs = now()): string {
  if (!at) return '<unknown>'
  const t = Date.parse(at)
  if (Number.isNaN(t)) return '<unknown>'
  return humanDuration(nowMs - t)
}

function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000)
  if (seconds < -1) return '<invalid>'
  if (seconds < 0) return '0s'
  if (seconds < 60 * 2) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 10) {
    const s = seconds % 60
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`
  }
  if (minutes < 60 * 3) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  if (hours < 8) {
    const m = minutes % 60
    return m === 0 ? `${hours}h` : `${hours}h${m}m`
  }
  if (hours < 48) return `${hours}h`
  if (hours < 24 * 8) {
    const h = hours % 24
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`
  if (hours < 24 * 365 * 8) {
    const d = Math.floor(hours / 24) % 365
    return d === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${d}d`
  }
  return `${Math.floor(hours / 24 / 365)}y`
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** "90s", "10m", "1h30m", or a bare number of seconds; null when it is none of these. */
export function parseDuration(text: string): number | null {
  const t = text.trim()
  if (/^\d+$/.test(t)) return Number(t)
  if (!/^(\d+[smhd])+$/.test(t)) return null
  let total = 0
  for (const [, n, unit] of t.matchAll(/(\d+)([smhd])/g)) total += Number(n) * (UNIT_SECONDS[unit as string] ?? 0)
  return total
}
