// What sudo.ts makes of sudo's answers, and what it refuses to put on a
// command line. The words are what sudo 1.9 and the shells print (sudo's
// refusals are also met for real in sudo-nodes.test.ts).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sudoCommand, sudoersRule, sudoOutcome, SudoSftp } from '../../src/agents/sudo.ts'
import { isServiceError } from '../../src/errors.ts'

describe('sudo -n: what its answers mean', () => {
  it('refusals, in sudo\'s own words', () => {
    assert.deepEqual(sudoOutcome(1, 'sudo: a password is required\n'), { refused: 'sudo: a password is required' })
    assert.deepEqual(sudoOutcome(1, "Sorry, user deploy is not allowed to execute '/usr/lib/openssh/sftp-server' as root on cp-1.\n"), {
      refused: "Sorry, user deploy is not allowed to execute '/usr/lib/openssh/sftp-server' as root on cp-1.",
    })
    assert.deepEqual(sudoOutcome(1, 'deploy is not in the sudoers file.  This incident will be reported.\n'), {
      refused: 'deploy is not in the sudoers file.  This incident will be reported.',
    })
    assert.deepEqual(sudoOutcome(1, 'sudo: sorry, you must have a tty to run sudo\n'), { refused: 'sudo: sorry, you must have a tty to run sudo' })
  })

  it('no sudo at all is a refusal too; a command sudo cannot find is not', () => {
    assert.deepEqual(sudoOutcome(127, 'sh: 1: sudo: not found\n'), { refused: "sudo is not installed for the node's user (sh: 1: sudo: not found)" })
    assert.deepEqual(sudoOutcome(127, 'bash: line 1: sudo: command not found\n'), {
      refused: "sudo is not installed for the node's user (bash: line 1: sudo: command not found)",
    })
    assert.deepEqual(sudoOutcome(1, 'sudo: crictl: command not found\n'), { notFound: 'sudo: crictl: command not found' })
  })

  it("the command's own failures and successes are not sudo's", () => {
    assert.equal(sudoOutcome(0, ''), null)
    assert.equal(sudoOutcome(1, 'time="2024-06-10T06:13:20Z" level=fatal msg="connect: connection refused"\n'), null)
    assert.equal(sudoOutcome(2, 'sudo: a password is required\n'), null, 'sudo exits 1 when it refuses')
  })

  it('the words are one bounded line of printable text', () => {
    const outcome = sudoOutcome(1, `sudo: a password is required\u001b[31m\n\n${'x'.repeat(5000)}\n`)
    assert.ok(outcome && 'refused' in outcome)
    assert.ok(outcome.refused.startsWith('sudo: a password is required[31m / xxx'), outcome.refused)
    assert.equal(outcome.refused.length, 301)
    assert.ok(outcome.refused.endsWith('…'))
  })
})

describe('command lines run as root', () => {
  it('only plain words: no space, quote or shell character', () => {
    assert.equal(sudoCommand(['crictl', 'pods', '-o', 'json']), 'sudo -n crictl pods -o json')
    for (const word of ['a b', 'x;id', '$(id)', '`id`', "'", '"', 'a|b', 'a&b', '', 'a\nb', '*']) {
      assert.throws(() => sudoCommand(['crictl', word]), /not a plain word/, JSON.stringify(word))
    }
  })

  it("a node's sftpServer that is not a plain absolute path is refused before anything is sent", () => {
    for (const path of ['sftp-server', '/usr/lib/openssh/sftp-server -e', '/usr/lib/../../bin/sh', '/bin/sh;id', '/x$(id)']) {
      assert.throws(() => new SudoSftp('cp-1', path), (err) => isServiceError(err) && err.code === 'VALIDATION_FAILED', path)
    }
    assert.equal(new SudoSftp('cp-1', '/opt/openssh/libexec/sftp-server').key, 'sudo /opt/openssh/libexec/sftp-server')
  })

  it('the sudoers rule allows the SFTP server without arguments and the two crictl argument lists', () => {
    assert.equal(
      sudoersRule('deploy', { sftpServer: '/usr/libexec/openssh/sftp-server', crictl: '/usr/local/bin/crictl' }, 'STATICPOD'),
      [
        'Cmnd_Alias STATICPOD = /usr/libexec/openssh/sftp-server "", /usr/local/bin/crictl pods -o json, /usr/local/bin/crictl ps -a -o json',
        'Defaults:deploy !requiretty',
        'deploy ALL=(root) NOPASSWD: STATICPOD',
      ].join('\n'),
    )
    assert.throws(() => sudoersRule('deploy, root', { sftpServer: '/usr/lib/openssh/sftp-server', crictl: '/usr/bin/crictl' }), /cannot be written into sudoers/)
  })
})
