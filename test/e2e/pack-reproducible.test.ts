import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, symlink, utimes, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { basaltOk } from '../harness/cli.js';
import { tempDir } from '../harness/tools.js';

async function makeTree(dir: string, mtime: number): Promise<void> {
  await mkdir(join(dir, 'etc/app'), { recursive: true });
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await writeFile(join(dir, 'etc/app/config'), 'key=value\n');
  await writeFile(join(dir, 'usr/bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  await symlink('../../etc/app/config', join(dir, 'usr/bin/config-link'));
  for (const p of ['etc/app/config', 'usr/bin/tool', 'etc/app', 'usr/bin', 'etc', 'usr']) await utimes(join(dir, p), mtime, mtime);
}

test('pack is reproducible: fresh stores, HOMEs and TMPDIRs at different times give one digest', async () => {
  const digests: string[] = [];
  const layouts: string[] = [];
  // Files newer than SOURCE_DATE_EPOCH (a fresh checkout at different times) are clamped to it.
  for (const [i, mtime] of [1_700_000_000, 1_750_000_123].entries()) {
    const sandbox = await tempDir(`pack-${i}`);
    const tree = join(sandbox, 'tree');
    await makeTree(tree, mtime);
    for (const d of ['home', 'tmp', 'store']) await mkdir(join(sandbox, d));
    const env = { HOME: join(sandbox, 'home'), TMPDIR: join(sandbox, 'tmp'), BASALT_STORE: join(sandbox, 'store'), SOURCE_DATE_EPOCH: '1690000000' };
    const layout = join(sandbox, 'layout');
    digests.push(basaltOk(['image', 'pack', tree, '-t', `oci:${layout}:v1`, '--platform', 'linux/amd64', '--entrypoint', '["/usr/bin/tool"]'], { env }).trim());
    layouts.push(layout);
    await sleep(1100);
  }
  assert.match(digests[0] ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.equal(digests[0], digests[1]);
  // Also the same bytes on disk, not only the same manifest digest.
  const idx = async (l: string) => readFile(join(l, 'index.json'), 'utf8');
  assert.equal(await idx(layouts[0] as string), await idx(layouts[1] as string));
});

test('pack without SOURCE_DATE_EPOCH records the current time', async () => {
  const sandbox = await tempDir('pack-now');
  await makeTree(join(sandbox, 'tree'), 1_600_000_000);
  const env = { SOURCE_DATE_EPOCH: '', BASALT_STORE: join(sandbox, 'store') };
  basaltOk(['image', 'pack', join(sandbox, 'tree'), '-t', `oci:${join(sandbox, 'l')}:v1`], { env });
  const config = JSON.parse(basaltOk(['image', 'inspect', '--config', `oci:${join(sandbox, 'l')}:v1`], { env })) as { created: string };
  assert.ok(Math.abs(Date.parse(config.created) - Date.now()) < 60_000, `created ${config.created} is now`);
});
