import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sha256Hex } from '../../src/manifest/hash.ts'

describe('sha256Hex', () => {
  it('hashes the exact bytes, lowercase hex', () => {
    assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  it('hashes a string as its UTF-8 bytes', () => {
    assert.equal(sha256Hex('é'), sha256Hex(Uint8Array.from([0xc3, 0xa9])))
    assert.notEqual(sha256Hex('a\r\n'), sha256Hex('a\n'))
  })
})
