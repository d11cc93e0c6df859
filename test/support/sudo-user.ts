// A real unprivileged login for the SUDO node tests: a user made with useradd
// and, when asked, a sudoers drop-in in /etc/sudoers.d (checked with
// `visudo -cf` before sudo can see it). remove() deletes both; callers
// register it with t.after / after right away, so a failing test cleans up too.
// Needs root (useradd, /etc/sudoers.d) and sudo: .ci/run installs it; without
// them the tests fail with one line saying what is missing, never skip.

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, constants } from 'node:fs'
import { chmod, chown, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const SUDOERS_DIR = '/etc/sudoers.d'
const USERDEL_ATTEMPTS = 50
const USERDEL_RETRY_MS = 100

export interface SudoUser {
  name: string
  uid: number
  gid: number
  /** Its home directory (sshd changes into it at login), removed with it. */
  home: string
  /** Installs lines as this user's drop-in (replacing an earlier one), after visudo -cf accepted them. */
  allow(lines: string): Promise<void>
  /** Removes the drop-in: the user keeps its login and loses sudo. */
  revoke(): Promise<void>
  /** Removes the drop-in, the user and its home. Safe to call twice. */
  remove(): Promise<void>
}

function requireTool(path: string, what: string): void {
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new Error(`the SUDO node tests need ${what} (${path}): ${what === 'sudo' ? 'apt-get install -y sudo' : 'the passwd package'}`)
  }
}

export async function createSudoUser(): Promise<SudoUser> {
  if (process.getuid?.() !== 0) throw new Error('the SUDO node tests need root: they create a user (useradd) and a sudoers drop-in')
  requireTool('/usr/sbin/useradd', 'useradd')
  requireTool('/usr/sbin/visudo', 'visudo')
  requireTool('/usr/bin/sudo', 'sudo')
  const name = `spapi-${randomBytes(4).toString('hex')}`
  const home = await mkdtemp(join(tmpdir(), 'staticpod-sudo-home-'))
  const dropIn = join(SUDOERS_DIR, `staticpod-api-test-${name}`)
  // '*': no password, and not a locked account ('!'), which sshd refuses even for a key when PAM is off.
  let uid: number
  let gid: number
  try {
    execFileSync('/usr/sbin/useradd', ['-M', '-d', home, '-s', '/bin/sh', '-p', '*', name], { stdio: ['ignore', 'ignore', 'pipe'] })
    uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim())
    gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim())
    await chown(home, uid, gid)
    await chmod(home, 0o700)
  } catch (err) {
    // Not handed out yet, so nobody else will remove it.
    try {
      execFileSync('/usr/sbin/userdel', [name], { stdio: 'ignore' })
    } catch {
      // useradd itself failed: there is no user
    }
    await rm(home, { recursive: true, force: true })
    throw err
  }
  let removed = false
  const revoke = () => rm(dropIn, { force: true })
  return {
    name,
    uid,
    gid,
    home,
    async allow(lines) {
      // A name with a '.' is one sudo skips, so the file is checked there and renamed into place whole.
      const staged = join(SUDOERS_DIR, `.staticpod-api-test-${name}.tmp`)
      await writeFile(staged, lines.endsWith('\n') ? lines : `${lines}\n`, { mode: 0o440 })
      try {
        execFileSync('/usr/sbin/visudo', ['-cf', staged], { stdio: ['ignore', 'ignore', 'pipe'] })
        await rename(staged, dropIn)
      } finally {
        await rm(staged, { force: true })
      }
    },
    revoke,
    async remove() {
      if (removed) return
      removed = true
      await revoke()
      try {
        // A session that just ended may still be exiting: userdel refuses while the user has processes.
        for (let attempt = 1; ; attempt++) {
          try {
            execFileSync('/usr/sbin/userdel', [name], { stdio: ['ignore', 'ignore', 'pipe'] })
            break
          } catch (err) {
            if (attempt >= USERDEL_ATTEMPTS || !/currently used by process/.test(String((err as { stderr?: unknown }).stderr))) throw err
            await sleep(USERDEL_RETRY_MS)
          }
        }
      } finally {
        await rm(home, { recursive: true, force: true })
      }
    },
  }
}
