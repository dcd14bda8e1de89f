import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createUsers } from '../../src/deploy/users.js';
import { requireTool, tempDir } from '../harness/tools.js';

/**
 * Users are made with the real shadow tools in a tree's /etc. Debian's base already has a
 * group named `operator` (the example kickstart's user): that group becomes the user's
 * primary group, as Anaconda does, instead of useradd failing on --user-group.
 */
test('a user whose name is an existing group gets that group as primary; others get their own', async () => {
  for (const t of ['useradd', 'chpasswd', 'openssl']) requireTool(t);
  const root = await tempDir('users');
  const etc = join(root, 'deploy/etc');
  await mkdir(etc, { recursive: true });
  await writeFile(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  await writeFile(join(etc, 'shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o640 });
  await writeFile(join(etc, 'group'), 'root:x:0:\noperator:x:37:\nsudo:x:27:\n');
  await writeFile(join(etc, 'gshadow'), 'root:*::\noperator:*::\nsudo:*::\n', { mode: 0o640 });
  await createUsers(join(root, 'deploy'), join(root, 'var'), [
    { name: 'operator', groups: ['sudo'], password: 'embedded' },
    { name: 'alice', groups: [] },
  ]);
  const passwd = await readFile(join(etc, 'passwd'), 'utf8');
  const group = await readFile(join(etc, 'group'), 'utf8');
  assert.match(passwd, /^operator:x:\d+:37:/m, 'operator keeps the existing group 37 as primary');
  assert.equal(group.match(/^operator:/gm)?.length, 1, 'no second operator group');
  assert.match(group, /^sudo:x:27:operator$/m);
  const alice = /^alice:x:(\d+):(\d+):/m.exec(passwd);
  assert.ok(alice, passwd);
  assert.match(group, new RegExp(`^alice:x:${alice[2]}:`, 'm'), 'alice gets a group of her own');
  assert.match(await readFile(join(etc, 'shadow'), 'utf8'), /^operator:\$6\$/m);
});
