import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ServiceError, userErrorsOf, ValidationErrors } from '../../src/errors.ts'
import { checkFileName } from '../../src/manifest/names.ts'
import { parseManifest } from '../../src/manifest/parse.ts'
import { validateStaticPod } from '../../src/manifest/validate.ts'
import { BAD_INPUT_NODE_NAME, badInputs } from './bad-inputs.ts'

function firstError(run: () => void): ServiceError {
  try {
    run()
  } catch (err) {
    if (err instanceof ServiceError) return err
    throw err
  }
  assert.fail('expected a validation error, got none')
}

describe('bad inputs corpus', () => {
  it('has at least 25 entries with distinct labels', () => {
    assert.ok(badInputs.length >= 25)
    assert.equal(new Set(badInputs.map((b) => b.label)).size, badInputs.length)
  })

  for (const bad of badInputs) {
    it(`refuses: ${bad.label}`, () => {
      const err = firstError(() => {
        if (bad.fileName !== undefined) checkFileName(bad.fileName)
        const parsed = parseManifest(bad.manifest)
        validateStaticPod(parsed.object, { nodeName: BAD_INPUT_NODE_NAME })
      })
      assert.equal(err.code, 'VALIDATION_FAILED')
      if (bad.fileName === undefined) assert.ok(err instanceof ValidationErrors, 'manifest problems come as ValidationErrors')
      assert.deepEqual(userErrorsOf(err)[0]?.field, bad.expectField, err.message)
      assert.ok(err.message.length > 10)
    })
  }

  it('the manifests of the fileName entries are valid on their own', () => {
    for (const bad of badInputs.filter((b) => b.fileName !== undefined)) {
      validateStaticPod(parseManifest(bad.manifest).object, { nodeName: BAD_INPUT_NODE_NAME })
    }
  })
})
