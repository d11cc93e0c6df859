// One command-line flag of a container, as kubeadm's extraArgs set it: in
// place where it is, appended where the container's flags are, or removed.
//
// The container's argv is its command followed by its args (when command is
// absent the image's entrypoint comes first, which the manifest does not show).
// Only string entries are read: anything else is left where it is. A flag is an
// entry `--name` or `--name=value`; `--name` followed by an entry that does not
// start with '-' is the two-entry form, whose value is that entry (pflag's rule
// for a flag that takes a value; a boolean `--name` followed by a positional
// argument reads the same, and kube components take no positional arguments).
// Entries after a lone `--` are positional, never flags.

const MAX_FLAG_LENGTH = 256
const MAX_FLAG_VALUE_LENGTH = 16 * 1024
const FLAG_NAME = /^--[A-Za-z0-9][A-Za-z0-9._-]*$/

/** Why `flag` is not a flag name, or null. */
export function flagProblem(flag: string): string | null {
  if (flag.length > MAX_FLAG_LENGTH) return `is ${flag.length} characters long; the limit is ${MAX_FLAG_LENGTH}`
  if (!FLAG_NAME.test(flag)) return 'is not a flag name: two dashes, then letters, digits, ".", "_" and "-" (e.g. --audit-log-maxage)'
  return null
}

/** Why `value` cannot be a flag's value, or null. */
export function flagValueProblem(value: string): string | null {
  if (value.length > MAX_FLAG_VALUE_LENGTH) return `is ${value.length} characters long; the limit is ${MAX_FLAG_VALUE_LENGTH}`
  // A manifest can hold them, but no program gets a NUL in argv, and a line break in a flag is a mistake.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'contains a line break or another control character'
  return null
}

type ArgvList = 'command' | 'args'

interface Entry {
  list: ArgvList
  index: number
}

interface Occurrence {
  /** The entry holding `--name` or `--name=value`. */
  at: Entry
  /** The value's own entry, in the two-entry form. */
  valueAt: Entry | null
}

export type FlagOutcome =
  | { ok: true }
  | { ok: false; problem: 'not-a-list'; list: ArgvList }
  | { ok: false; problem: 'ambiguous'; where: string[] }
  | { ok: false; problem: 'shell'; shell: string }

const SHELLS = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh', 'busybox'])

/** Sets (value a string) or removes (null) the flag in the container, in place. */
export function setFlag(container: Record<string, unknown>, flag: string, value: string | null): FlagOutcome {
  const lists: Partial<Record<ArgvList, unknown[]>> = {}
  for (const list of ['command', 'args'] as const) {
    const entries = container[list]
    if (entries === undefined || entries === null) continue
    if (!Array.isArray(entries)) return { ok: false, problem: 'not-a-list', list }
    lists[list] = entries
  }
  const argv: Entry[] = [
    ...(lists.command ?? []).map((_, index): Entry => ({ list: 'command', index })),
    ...(lists.args ?? []).map((_, index): Entry => ({ list: 'args', index })),
  ]
  const entryAt = (e: Entry): unknown => lists[e.list]![e.index]

  let end = argv.findIndex((e) => entryAt(e) === '--')
  if (end === -1) end = argv.length
  const occurrences: Occurrence[] = []
  for (let i = 0; i < end; i++) {
    const entry = entryAt(argv[i]!)
    if (entry === flag) {
      const next = i + 1 < end ? entryAt(argv[i + 1]!) : undefined
      const twoEntries = typeof next === 'string' && !next.startsWith('-')
      occurrences.push({ at: argv[i]!, valueAt: twoEntries ? argv[i + 1]! : null })
      if (twoEntries) i++
    } else if (typeof entry === 'string' && entry.startsWith(`${flag}=`)) {
      occurrences.push({ at: argv[i]!, valueAt: null })
    }
  }

  if (value === null) {
    // From the last, so that the indexes of those before stay right.
    const doomed = occurrences.flatMap((o) => (o.valueAt ? [o.at, o.valueAt] : [o.at]))
    doomed.sort((a, b) => (a.list === b.list ? b.index - a.index : a.list === 'args' ? -1 : 1))
    for (const e of doomed) lists[e.list]!.splice(e.index, 1)
    return { ok: true }
  }

  if (occurrences.length > 1) {
    return { ok: false, problem: 'ambiguous', where: occurrences.map((o) => `${o.at.list}[${o.at.index}]`) }
  }
  const joined = `${flag}=${value}`
  const found = occurrences[0]
  if (found) {
    const { at, valueAt } = found
    // A value that is empty or starts with '-' would not read back as this flag's value in its own entry.
    if (valueAt && value !== '' && !value.startsWith('-')) {
      lists[valueAt.list]![valueAt.index] = value
    } else {
      lists[at.list]![at.index] = joined
      if (valueAt) lists[valueAt.list]!.splice(valueAt.index, 1)
    }
    return { ok: true }
  }

  const shell = lists.command ? shellScript(argv.map(entryAt)) : null
  if (shell) return { ok: false, problem: 'shell', shell }
  if (end < argv.length) {
    // Before the `--` that ends the flags.
    const terminator = argv[end]!
    lists[terminator.list]!.splice(terminator.index, 0, joined)
    return { ok: true }
  }
  appendTo(container, lists, appendTarget(lists), joined)
  return { ok: true }
}

const hasFlags = (entries: unknown[] | undefined): boolean =>
  (entries ?? []).some((e) => typeof e === 'string' && e.startsWith('--') && e !== '--')

/**
 * Where a new flag goes: where the flags are (args first, as a Deployment-style
 * manifest keeps them there; then command, as kubeadm writes them); else after
 * the arguments there are (args, then a command naming its program). With
 * neither, a new args list: a command list would replace the image's
 * entrypoint, while args only replace its default arguments (CMD).
 */
function appendTarget(lists: Partial<Record<ArgvList, unknown[]>>): ArgvList {
  if (hasFlags(lists.args)) return 'args'
  if (hasFlags(lists.command)) return 'command'
  if (lists.args) return 'args'
  if (lists.command && lists.command.length > 0) return 'command'
  return 'args'
}

function appendTo(container: Record<string, unknown>, lists: Partial<Record<ArgvList, unknown[]>>, list: ArgvList, entry: string): void {
  const entries = lists[list]
  if (entries) entries.push(entry)
  else container[list] = [entry]
}

/**
 * `sh -c '<script>' ...`: a flag appended there would be the script's $0, not
 * the program's flag. Returns the shell's name, or null.
 */
function shellScript(argv: unknown[]): string | null {
  const program = argv[0]
  if (typeof program !== 'string') return null
  const base = program.slice(program.lastIndexOf('/') + 1)
  if (!SHELLS.has(base)) return null
  return argv.some((e) => typeof e === 'string' && /^-[a-z]*c[a-z]*$/.test(e)) ? base : null
}
