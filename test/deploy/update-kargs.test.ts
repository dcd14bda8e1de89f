import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { applyImageKargsDiff, carriedKargs, editKargs } from '../../src/deploy/kargs-edit.js';
import { isStagedLocked, lockStaged, unlockStaged } from '../../src/deploy/staged-lock.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { tempDir } from '../harness/tools.js';

test('carried arguments drop ostree= and basalt.deployment=, keep repeats in order', () => {
  assert.deepEqual(carriedKargs('root=UUID=x rw console=tty0 console=ttyS0 ostree=/ostree/boot.1/default/abc/0 basalt.deployment=default/abc.0  quiet'), ['root=UUID=x', 'rw', 'console=tty0', 'console=ttyS0', 'quiet']);
});

test('only kargs.d differences apply across an update, counted one by one', () => {
  const current = ['root=UUID=x', 'rw', 'console=tty0', 'console=ttyS0', 'mine=1'];
  // Unchanged kargs.d: nothing moves, even arguments the owner deleted (quiet) stay deleted.
  assert.deepEqual(applyImageKargsDiff(current, ['console=tty0', 'quiet'], ['console=tty0', 'quiet']), current);
  // The image adds splash and drops console=tty0; the owner's mine=1 stays.
  assert.deepEqual(applyImageKargsDiff(current, ['console=tty0', 'console=ttyS0'], ['console=ttyS0', 'splash']), ['root=UUID=x', 'rw', 'console=ttyS0', 'mine=1', 'splash']);
  // A repeated argument: the image had console=ttyS0 twice, now once; one copy goes.
  assert.deepEqual(applyImageKargsDiff(['console=ttyS0', 'console=ttyS0', 'a'], ['console=ttyS0', 'console=ttyS0'], ['console=ttyS0']), ['console=ttyS0', 'a']);
});

test('kargs edits: delete by name or exact value, replace all or one value, append; refusals', () => {
  const k = ['root=UUID=x', 'console=tty0', 'console=ttyS0', 'quiet'];
  assert.deepEqual(editKargs(k, { delete: ['console'] }), ['root=UUID=x', 'quiet']);
  assert.deepEqual(editKargs(k, { delete: ['console=tty0'] }), ['root=UUID=x', 'console=ttyS0', 'quiet']);
  assert.deepEqual(editKargs(k, { replace: ['console=hvc0'] }), ['root=UUID=x', 'console=hvc0', 'quiet']);
  assert.deepEqual(editKargs(k, { replace: ['console=ttyS0=ttyS1'] }), ['root=UUID=x', 'console=tty0', 'console=ttyS1', 'quiet']);
  assert.deepEqual(editKargs(k, { append: ['a=1', 'a=1'] }), [...k, 'a=1', 'a=1']);
  for (const edit of [{ delete: ['nosuch'] }, { replace: ['nosuch=1'] }, { replace: ['console=x=y'] }, { append: ['two words'] }, { append: ['ostree=/x'] }, { delete: ['basalt.deployment'] }])
    assert.throws(() => editKargs(k, edit), (e) => isBasaltError(e) && e.kind === 'usage', JSON.stringify(edit));
});

test('the staged-deployment lock file is created and removed (ostree finalize-staged looks for it)', async () => {
  const dir = await tempDir('staged-lock');
  const path = join(dir, 'run/ostree/staged-deployment-locked');
  assert.equal(await isStagedLocked(path), false);
  await lockStaged(path);
  assert.equal(await isStagedLocked(path), true);
  assert.equal(await unlockStaged(path), true);
  assert.equal(await isStagedLocked(path), false);
  assert.equal(await unlockStaged(path), false);
});
