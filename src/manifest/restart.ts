// Restarting a static pod = changing its manifest, because the kubelet derives
// the pod UID from the file content. The smallest change that means "restart"
// is one annotation. The file is edited as text (yaml-layout.ts), so an
// operator diffing revisions sees exactly one changed line. The value is
// always written as a JSON string, whatever the style of the one it replaces:
// a plain timestamp would be a !!timestamp to YAML 1.1 readers.

import { isMap, isScalar, parseDocument, type YAMLMap } from 'yaml'
import { ServiceError } from '../errors.ts'
import { isMapping, parseManifest, yamlOptions } from './parse.ts'
import { applyEdits, assertParsesTo, Layout, pairNamed, type TextEdit } from './yaml-layout.ts'

export const RESTART_ANNOTATION = 'staticpod-api/restartedAt'

/**
 * Sets metadata.annotations["staticpod-api/restartedAt"] to timestamp and
 * changes nothing else in the text. Throws ValidationErrors when the text is
 * not a valid manifest, VALIDATION_FAILED when metadata or annotations are not
 * mappings, WRITE_FAILED if the edit would change anything else (a bug).
 */
export function setRestartAnnotation(text: string, timestamp: string): string {
  const original = parseManifest(text)
  const edited = applyEdits(text, [planEdit(text, timestamp)])
  assertOnlyAnnotationChanged(original.object, edited, timestamp)
  return edited
}

function planEdit(text: string, timestamp: string): TextEdit {
  // parseManifest (just before) has found any duplicate key in linear time; the yaml lib's uniqueKeys is quadratic.
  const doc = parseDocument(text, yamlOptions(false))
  const root = doc.contents
  const metadata = isMap(root) ? pairNamed(root, 'metadata')?.value : undefined
  if (!isMap(metadata)) {
    throw new ServiceError('VALIDATION_FAILED', 'The manifest has no metadata mapping to put the restart annotation in.', ['manifest', 'metadata'])
  }
  const layout = new Layout(text, 'set the restart annotation')
  const value = JSON.stringify(timestamp)
  const annotationsPair = pairNamed(metadata, 'annotations')

  if (!annotationsPair) {
    if (metadata.flow) return layout.flowInsert(metadata, [`"annotations": {${JSON.stringify(RESTART_ANNOTATION)}: ${value}}`])
    // One nesting step as the file does it: metadata's keys relative to `metadata:` itself.
    const metadataKey = pairNamed(root as YAMLMap, 'metadata')!
    const step = Math.max(layout.keyColumn(metadata) - layout.column(layout.keyStart(metadataKey)), 1)
    return layout.blockAppend(metadata, ['annotations:', `${' '.repeat(step)}${RESTART_ANNOTATION}: ${value}`])
  }

  const annotations = annotationsPair.value
  if (isMap(annotations)) {
    const existing = pairNamed(annotations, RESTART_ANNOTATION)
    if (existing) return layout.replaceValue(existing, value)
    if (annotations.flow) return layout.flowInsert(annotations, [`${JSON.stringify(RESTART_ANNOTATION)}: ${value}`])
    return layout.blockAppend(annotations, [`${RESTART_ANNOTATION}: ${value}`])
  }
  if (annotations === null || (isScalar(annotations) && annotations.value === null)) {
    // `annotations:` with nothing (or null, ~) after it.
    return layout.replaceValue(annotationsPair, `{${JSON.stringify(RESTART_ANNOTATION)}: ${value}}`)
  }
  throw new ServiceError('VALIDATION_FAILED', 'metadata.annotations must be a mapping.', ['manifest', 'metadata', 'annotations'])
}

// The edited text must mean the same object plus the one annotation.
function assertOnlyAnnotationChanged(before: Record<string, unknown>, editedText: string, timestamp: string): void {
  const metadata = before['metadata'] as Record<string, unknown>
  const annotations = isMapping(metadata['annotations']) ? metadata['annotations'] : {}
  const expected = { ...before, metadata: { ...metadata, annotations: { ...annotations, [RESTART_ANNOTATION]: timestamp } } }
  assertParsesTo(editedText, expected, {
    unparseable: 'Setting the restart annotation produced an unparseable manifest; nothing was written.',
    different: 'Setting the restart annotation would have changed more than that annotation; nothing was written.',
  })
}
