import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { forgetBadImage, isKnownBadImage, readBadImages, rememberBadImage } from '../../src/deploy/bad-images.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { tempDir } from '../harness/tools.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

test('a failed image is remembered once, survives rereading, and can be forgotten', async () => {
  const dir = await tempDir('bad-images');
  const file = join(dir, 'var/lib/basalt/failed-images');
  assert.equal(await isKnownBadImage(A, file), false, 'no file: nothing is bad');
  await rememberBadImage(A, 'health check 50-fail failed', file, new Date('2026-01-02T03:04:05Z'));
  await rememberBadImage(A, 'again', file);
  await rememberBadImage(B, '', file);
  assert.equal(await isKnownBadImage(A, file), true);
  assert.equal(await isKnownBadImage(B, file), true);
  assert.equal(await isKnownBadImage(`sha256:${'c'.repeat(64)}`, file), false);
  assert.deepEqual((await readBadImages(file))[0], { digest: A, time: '2026-01-02T03:04:05.000Z', reason: 'health check 50-fail failed' });
  assert.equal((await readBadImages(file)).length, 2, 'a second failure of A adds no line');
  assert.deepEqual(await readdir(join(dir, 'var/lib/basalt')), ['failed-images'], 'no temp file left');
  assert.equal(await forgetBadImage(A, file), true);
  assert.equal(await forgetBadImage(A, file), false);
  assert.equal(await isKnownBadImage(A, file), false);
  assert.match(await readFile(file, 'utf8'), new RegExp(`^${B} `, 'm'));
});

test('comments and junk lines are ignored; a malformed digest is refused', async () => {
  const dir = await tempDir('bad-images');
  const file = join(dir, 'failed-images');
  await writeFile(file, `# comment\n\nnot-a-digest 2026 x\n${B} 2026-01-01T00:00:00Z hand-written\n`);
  assert.deepEqual((await readBadImages(file)).map((b) => b.digest), [B]);
  await assert.rejects(rememberBadImage('latest', '', file), (e) => isBasaltError(e, 'usage'));
  await assert.rejects(forgetBadImage('sha256:short', file), (e) => isBasaltError(e, 'usage'));
});
