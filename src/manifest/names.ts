// Kubernetes name rules and the file-name rules of a staticPodPath.

import { ServiceError, quoteInput } from '../errors.ts'
import { hasLoneSurrogate } from './text.ts'

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1123_LABEL_MAX = 63
export const DNS1123_SUBDOMAIN_MAX = 253
/** Longest file name most Linux file systems accept (NAME_MAX), in bytes. */
const FILE_NAME_MAX_BYTES = 255

export function isDns1123Label(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(s)
}

/**
 * A DNS-1123 subdomain, the rule for metadata.name of a Pod (and so of its
 * mirror pod). As in Kubernetes (apimachinery IsDNS1123Subdomain), only the
 * whole name is limited to 253 characters, not each dot-separated part to 63.
 */
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.test(s)
}

/** The kubelet names the running pod and its mirror `<name>-<node name lowercased>`. */
export function mirrorPodName(name: string, nodeName: string): string {
  return `${name}-${nodeName.toLowerCase()}`
}

export function defaultFileName(name: string): string {
  return `${name}.yaml`
}

// C0 controls and DEL. C1 controls (U+0080..U+009F) are included too: they are
// invisible in a terminal listing, so an operator could not see what is there.
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's job
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/
// Unicode format characters (bidi overrides and isolates, zero-width spaces
// and joiners, BOM) and line separators: `ls` would show "pod‮lmay.exe" as
// another name than the kubelet reads.
const INVISIBLE_CHARACTER = /[\p{Cf}\p{Zl}\p{Zp}]/u

/**
 * Throws VALIDATION_FAILED (field ['fileName']) unless fileName is a plain file
 * name that stays inside staticPodPath and that the kubelet will read. Dotfiles
 * are refused because the kubelet skips them (and the service uses dotfiles for
 * its own temporary writes); separators and '..' because they would leave the
 * directory.
 */
export function checkFileName(fileName: string): void {
  const problem = fileNameProblem(fileName)
  if (problem) throw new ServiceError('VALIDATION_FAILED', problem, ['fileName'])
}

function fileNameProblem(fileName: string): string | null {
  if (fileName.length === 0) return 'fileName must not be empty.'
  if (fileName.includes('/') || fileName.includes('\\')) {
    return `fileName ${quoteInput(fileName)} must be a plain file name, without '/' or '\\': the manifest has to stay inside staticPodPath.`
  }
  if (fileName.includes('\u0000')) return 'fileName must not contain a NUL character.'
  if (fileName === '.' || fileName === '..') return `fileName ${quoteInput(fileName)} is not a file name.`
  if (fileName.startsWith('.')) {
    return `fileName ${quoteInput(fileName)} starts with '.': the kubelet ignores dotfiles, so it would never run this pod.`
  }
  const bytes = Buffer.byteLength(fileName, 'utf8')
  if (bytes > FILE_NAME_MAX_BYTES) return `fileName is ${bytes} bytes long; the limit is ${FILE_NAME_MAX_BYTES}.`
  if (CONTROL_CHARACTER.test(fileName)) return `fileName ${quoteInput(fileName)} contains control characters.`
  if (INVISIBLE_CHARACTER.test(fileName)) {
    return `fileName ${quoteInput(fileName)} contains an invisible formatting character (such as a right-to-left override), which would make a listing show another name than the file has.`
  }
  if (hasLoneSurrogate(fileName)) return 'fileName contains a lone UTF-16 surrogate: it has no UTF-8 encoding.'
  return null
}
