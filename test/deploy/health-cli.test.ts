import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt } from '../harness/cli.js';
import { tempDir } from '../harness/tools.js';

test('basalt health check exits non-zero when a check fails (that status is what stops boot-complete.target), 0 when all pass', async () => {
  const dir = await tempDir('health-cli');
  await writeFile(join(dir, '10-ok'), '#!/bin/sh\nexit 0\n');
  await chmod(join(dir, '10-ok'), 0o755);
  const ok = basalt(['health', 'check', '--no-reboot', '--dir', dir]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /basalt-health: 10-ok: ok/);

  await writeFile(join(dir, '20-fail'), '#!/bin/sh\necho broken\nexit 3\n');
  await chmod(join(dir, '20-fail'), 0o755);
  const bad = basalt(['health', 'check', '--no-reboot', '--dir', dir, '--esp', join(dir, 'no-esp')]);
  assert.equal(bad.status, 10, bad.stdout + bad.stderr);
  assert.match(bad.stdout, /basalt-health: 20-fail: failed \(exit 3\)/);
  assert.match(bad.stdout, /basalt-health:\s+broken/);
  assert.match(bad.stdout, /not rebooting/, 'this host boot is not counted: no reboot decision');
  assert.match(bad.stderr, /health check 20-fail \(exit 3\) failed/);
  const json = basalt(['health', 'check', '--no-reboot', '--json', '--dir', dir]);
  assert.equal(json.status, 10);
  const parsed = JSON.parse(json.stdout) as { results: Array<{ name: string; ok: boolean }>; decision: string };
  assert.deepEqual(parsed.results.map((r) => [r.name, r.ok]), [['10-ok', true], ['20-fail', false]]);
  assert.equal(parsed.decision, 'stay');
});
