import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listHealthChecks, runHealthChecks } from '../../src/deploy/health.js';
import { tempDir } from '../harness/tools.js';

async function script(path: string, body: string, mode = 0o755): Promise<void> {
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
}

test('checks from both directories run in name order; /etc replaces or turns off /usr checks by name', async () => {
  const root = await tempDir('health');
  const usr = join(root, 'usr/lib/basalt/health.d');
  const etc = join(root, 'etc/basalt/health.d');
  await mkdir(usr, { recursive: true });
  await mkdir(etc, { recursive: true });
  await script(join(usr, '10-network'), 'echo usr network; exit 1');
  await script(join(usr, '20-disk'), 'exit 0');
  await script(join(usr, '30-masked'), 'exit 1');
  await script(join(usr, '40-off'), 'exit 1');
  await script(join(usr, 'README'), 'not a check', 0o644);
  await script(join(etc, '10-network'), 'echo etc network; exit 0');
  await symlink('/dev/null', join(etc, '30-masked'));
  await script(join(etc, '40-off'), 'exit 1', 0o644);
  await script(join(etc, '25-local'), 'echo local >&2; exit 7');
  const checks = await listHealthChecks([usr, etc, join(root, 'missing')]);
  assert.deepEqual(checks.map((c) => c.path), [join(etc, '10-network'), join(usr, '20-disk'), join(etc, '25-local')]);

  const results = await runHealthChecks({ dirs: [usr, etc] });
  assert.deepEqual(results.map((r) => [r.name, r.ok, r.exitCode]), [['10-network', true, 0], ['20-disk', true, 0], ['25-local', false, 7]]);
  assert.equal(results[0]?.output, 'etc network\n');
  assert.equal(results[2]?.output, 'local\n', 'stderr is kept for the log');
});

test('a check that hangs is killed at the timeout and counts as failed; one that cannot start fails too', async () => {
  const dir = await tempDir('health');
  await script(join(dir, '10-hang'), 'sleep 30');
  await writeFile(join(dir, '20-noshebang'), 'garbage\0\0');
  await chmod(join(dir, '20-noshebang'), 0o755);
  const started = Date.now();
  const results = await runHealthChecks({ dirs: [dir], timeoutMs: 500 });
  assert.ok(Date.now() - started < 10_000);
  assert.deepEqual(results.map((r) => [r.name, r.ok]), [['10-hang', false], ['20-noshebang', false]]);
  assert.equal(results[0]?.timedOut, true);
  assert.equal(results[0]?.signal, 'SIGKILL');
  assert.equal(await runHealthChecks({ dirs: [join(dir, 'none')] }).then((r) => r.length), 0, 'no checks: nothing fails');
});
