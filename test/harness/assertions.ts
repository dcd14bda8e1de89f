import assert from 'node:assert/strict';
import { isBasaltError, type ErrorKind } from '../../src/oci/errors.js';

/** Asserts that `p` rejects with a BasaltError of `kind` whose message matches `message`. */
export async function refused(p: Promise<unknown>, kind: ErrorKind, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBasaltError(e), `expected a BasaltError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, message);
    return true;
  });
}
