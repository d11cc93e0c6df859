// SSH host key fingerprints in the form OpenSSH prints them (`ssh-keygen -lf`,
// the first-connection prompt), so an admin can compare what the service saw
// with what the node says about itself, character for character.

import { createHash } from 'node:crypto'

/** `SHA256:` + unpadded base64 of the SHA-256 of the raw public key blob. */
export function openSshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`
}

/** Pinned fingerprints are stored without padding; compare them the same way. */
export function sameFingerprint(a: string, b: string): boolean {
  return a.replace(/=+$/, '') === b.replace(/=+$/, '')
}
