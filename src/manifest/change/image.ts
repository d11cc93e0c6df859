// Image references, as the container runtimes parse them: the grammar of
// github.com/distribution/reference (regexp.go), which containerd and CRI-O
// use. The API server only requires a non-empty image; a reference the runtime
// cannot parse makes a pod that never starts, so it is refused here.

export const MAX_IMAGE_LENGTH = 512
/** reference.NameTotalLengthMax: registry and repository together. */
const MAX_NAME_LENGTH = 255

const alphanumeric = '[a-z0-9]+'
const separator = '(?:[._]|__|[-]+)'
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const domainName = `${domainComponent}(?:\\.${domainComponent})*`
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]'
const domainAndPort = `(?:${domainName}|${ipv6})(?::[0-9]+)?`
const name = `(?:${domainAndPort}/)?${pathComponent}(?:/${pathComponent})*`
const tag = '[\\w][\\w.-]{0,127}'
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}'

const REFERENCE = new RegExp(`^(${name})(?::(${tag}))?(?:@(${digest}))?$`)
const TAG = new RegExp(`^${tag}$`)

/** Why `image` is not a full image reference, or null. */
export function imageProblem(image: string): string | null {
  if (image.length === 0) return 'is empty'
  if (image.length > MAX_IMAGE_LENGTH) return `is ${image.length} characters long; the limit is ${MAX_IMAGE_LENGTH}`
  if (/\s/.test(image)) return 'contains whitespace'
  const match = REFERENCE.exec(image)
  if (!match) {
    return 'is not an image reference ([registry[:port]/]repository[:tag][@digest], the repository in lowercase, e.g. registry.k8s.io/kube-apiserver:v1.31.4)'
  }
  if (match[1]!.length > MAX_NAME_LENGTH) return `has a registry and repository of ${match[1]!.length} characters; the limit is ${MAX_NAME_LENGTH}`
  return null
}

/** Why `value` is not an image tag, or null. */
export function tagProblem(value: string): string | null {
  if (TAG.test(value)) return null
  return value.length > 128
    ? `is ${value.length} characters long; a tag has at most 128`
    : 'is not an image tag (a letter, digit or _, then letters, digits, _, . and -; e.g. v1.31.4)'
}

/**
 * The reference with its tag replaced: registry (port included) and
 * repository kept. A digest is dropped with the old tag: it pins the old
 * image's content, so keeping it would keep running the old image whatever the
 * tag says (the runtime pulls by digest when there is one).
 */
export function withTag(image: string, newTag: string): string {
  let repository = image
  const at = repository.indexOf('@')
  if (at !== -1) repository = repository.slice(0, at)
  // A ':' after the last '/' starts the tag; one before it is a registry's port.
  const colon = repository.lastIndexOf(':')
  if (colon > repository.lastIndexOf('/')) repository = repository.slice(0, colon)
  return `${repository}:${newTag}`
}
