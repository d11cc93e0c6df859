// The manifest module's public surface: pure functions, no I/O.

export { sha256Hex } from './hash.ts'
export { checkFileName, defaultFileName, isDns1123Label, isDns1123Subdomain, mirrorPodName } from './names.ts'
export { MAX_MANIFEST_BYTES, parseManifest, type ManifestFormat, type ParsedManifest, type ParseManifestOptions } from './parse.ts'
export { findApiReferences, type ApiReference } from './api-references.ts'
export { validateStaticPod, type PodIdentity, type ValidateOptions } from './validate.ts'
export { containerSpecs, DEFAULT_NAMESPACE, podIdentityOf, type PodName } from './pod-fields.ts'
export { RESTART_ANNOTATION, setRestartAnnotation } from './restart.ts'
export { lintManifestDir, type LintResult } from './lint.ts'
export { isStrayFileName } from './stray.ts'
export type { ContainerSpec, DirEntry, Finding, FindingCode, FoundPod } from './types.ts'
export { FINDING_CODES } from './types.ts'
