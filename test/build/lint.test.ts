import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lintFailed, lintTree, listLints } from '../../src/build/lint.js';
import { treeFromDirectory } from '../../src/build/root-tree.js';
import { tempDir } from '../harness/tools.js';

/** A tree that passes every lint: the bootable layout in miniature. */
async function goodTree(): Promise<string> {
  const root = await tempDir('lint');
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'var/lib', 'boot', 'sysroot', 'etc', 'usr/lib/modules/6.1.0-1-amd64', 'usr/lib/systemd', 'usr/lib/sysusers.d', 'usr/lib/tmpfiles.d', 'usr/lib/bootc/kargs.d'])
    await mkdir(join(root, d), { recursive: true });
  await symlink('sysroot/ostree', join(root, 'ostree'));
  await symlink('../run', join(root, 'var/run'));
  await writeFile(join(root, 'usr/lib/modules/6.1.0-1-amd64/vmlinuz'), 'kernel');
  await writeFile(join(root, 'usr/lib/modules/6.1.0-1-amd64/initramfs.img'), 'initramfs');
  await writeFile(join(root, 'usr/lib/systemd/systemd'), 'systemd');
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(root, 'usr/lib/sysusers.d/basic.conf'), 'u root 0 "Super User" /root\n');
  await writeFile(join(root, 'usr/lib/tmpfiles.d/var.conf'), 'd /var/lib 0755 - - -\nd /var/log 0755 - - -\nL /var/run - - - - ../run\n');
  await writeFile(join(root, 'usr/lib/bootc/kargs.d/10-console.toml'), 'kargs = ["console=ttyS0"]\nmatch-architectures = ["x86_64"]\n');
  return root;
}

async function findingsOf(root: string): Promise<Map<string, string[]>> {
  const report = lintTree(await treeFromDirectory(root));
  const out = new Map<string, string[]>();
  for (const f of report.findings) out.set(f.lint, [...(out.get(f.lint) ?? []), f.message]);
  return out;
}

test('a tree in the bootable layout passes every lint', async () => {
  const root = await goodTree();
  try {
    const report = lintTree(await treeFromDirectory(root));
    assert.deepEqual(report.findings, []);
    assert.equal(report.passed.length, listLints().length);
    assert.equal(lintFailed(report, true), false);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

/** Each case breaks one thing and expects exactly that lint to fire, naming the path. */
const cases: Array<{ lint: string; level: 'fatal' | 'warning'; breakIt: (root: string) => Promise<void>; mentions: string; also?: string[] }> = [
  { lint: 'kernel', level: 'fatal', breakIt: (r) => rm(join(r, 'usr/lib/modules/6.1.0-1-amd64/vmlinuz')), mentions: 'no kernel' },
  {
    lint: 'kernel', level: 'fatal', mentions: '2 kernels',
    breakIt: async (r) => {
      await mkdir(join(r, 'usr/lib/modules/6.2.0-1-amd64'));
      await writeFile(join(r, 'usr/lib/modules/6.2.0-1-amd64/vmlinuz'), 'k2');
    },
  },
  { lint: 'kernel', level: 'fatal', breakIt: (r) => rm(join(r, 'usr/lib/modules/6.1.0-1-amd64/initramfs.img')), mentions: '/usr/lib/modules/6.1.0-1-amd64/initramfs.img' },
  { lint: 'etc-usretc', level: 'fatal', breakIt: (r) => mkdir(join(r, 'usr/etc')), mentions: '/usr/etc' },
  { lint: 'var-tmpfiles', level: 'warning', breakIt: (r) => writeFile(join(r, 'var/lib/state.db'), 'x'), mentions: '/var/lib/state.db' },
  { lint: 'nonempty-run-tmp', level: 'warning', breakIt: (r) => writeFile(join(r, 'tmp/leftover'), 'x'), mentions: '/tmp/leftover' },
  { lint: 'systemd', level: 'fatal', breakIt: (r) => rm(join(r, 'usr/lib/systemd/systemd')), mentions: '/usr/lib/systemd/systemd' },
  { lint: 'bootc-kargs', level: 'fatal', breakIt: (r) => writeFile(join(r, 'usr/lib/bootc/kargs.d/20-bad.toml'), 'kargs = "quiet"\n'), mentions: '/usr/lib/bootc/kargs.d/20-bad.toml' },
  { lint: 'sysusers', level: 'warning', breakIt: (r) => writeFile(join(r, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n'), mentions: 'alice' },
  { lint: 'utf8', level: 'fatal', breakIt: (r) => writeFile(Buffer.concat([Buffer.from(`${r}/usr/bad-`), Buffer.from([0xff, 0xfe])]), 'x'), mentions: '/usr/bad-\\xff\\xfe' },
  { lint: 'nonempty-boot', level: 'warning', breakIt: (r) => writeFile(join(r, 'boot/vmlinuz-6.1.0-1-amd64'), 'k'), mentions: '/boot/vmlinuz-6.1.0-1-amd64' },
  { lint: 'baseimage-root', level: 'fatal', breakIt: (r) => rm(join(r, 'ostree')), mentions: '/ostree' },
  { lint: 'var-run', level: 'fatal', breakIt: async (r) => { await rm(join(r, 'var/run')); await mkdir(join(r, 'var/run')); }, mentions: '/var/run' },
  { lint: 'var-log', level: 'warning', breakIt: async (r) => { await mkdir(join(r, 'var/log')); await writeFile(join(r, 'var/log/dpkg.log'), 'log'); }, mentions: '/var/log/dpkg.log', also: ['var-tmpfiles'] },
  { lint: 'buildah-injected', level: 'warning', breakIt: (r) => writeFile(join(r, 'etc/hostname'), ''), mentions: '/etc/hostname' },
  { lint: 'api-base-directories', level: 'fatal', breakIt: (r) => rm(join(r, 'proc'), { recursive: true }), mentions: '/proc' },
];

for (const c of cases) {
  test(`lint ${c.lint} (${c.level}) fires: ${c.mentions}`, async () => {
    const root = await goodTree();
    try {
      await c.breakIt(root);
      const report = lintTree(await treeFromDirectory(root));
      const lints = [...new Set(report.findings.map((f) => f.lint))];
      assert.deepEqual(lints, [c.lint, ...(c.also ?? [])], JSON.stringify(report.findings));
      const finding = report.findings[0];
      assert.equal(finding?.level, c.level);
      assert.ok(finding?.message.includes(c.mentions), finding?.message);
      assert.equal(lintFailed(report), c.level === 'fatal');
      assert.equal(lintFailed(report, true), true);
      // --skip takes it out
      const skip = [c.lint, ...(c.also ?? [])];
      const skipped = lintTree(await treeFromDirectory(root), { skip });
      assert.deepEqual(skipped.findings, []);
      assert.deepEqual(skipped.skipped, [...skip].sort());
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}

test('skipping a lint that does not exist is a usage error listing the lints', async () => {
  const root = await goodTree();
  try {
    assert.throws(() => lintTree({ source: 'x', entries: new Map(), contents: new Map(), nonUtf8: [] }, { skip: ['no-such'] }), /no lint named "no-such"/);
    const names = (await findingsOf(root)).size;
    assert.equal(names, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
