import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run, tempDir } from '../harness/tools.js';

/**
 * A plain-directory ostree sysroot made by the real ostree CLI from a tiny bootable-layout tree
 * (kernel, initramfs, os-release, /usr/etc): enough for ostree's boot links and BLS entries.
 */
export async function ostreeSysroot(deploys: number): Promise<string> {
  requireTool('ostree');
  const work = await tempDir('ostree-sysroot');
  const tree = join(work, 'tree');
  await mkdir(join(tree, 'usr/lib/modules/6.1.0-test'), { recursive: true });
  await mkdir(join(tree, 'usr/etc'), { recursive: true });
  await mkdir(join(tree, 'sysroot'));
  await writeFile(join(tree, 'usr/lib/modules/6.1.0-test/vmlinuz'), 'kernel\n');
  await writeFile(join(tree, 'usr/lib/modules/6.1.0-test/initramfs.img'), 'initramfs\n');
  await writeFile(join(tree, 'usr/lib/os-release'), 'ID=debian\nNAME=test\n');
  await symlink('../usr/lib/os-release', join(tree, 'usr/etc/os-release'));
  await symlink('sysroot/ostree', join(tree, 'ostree'));
  const sysroot = join(work, 'sysroot');
  await mkdir(sysroot);
  run('ostree', ['admin', 'init-fs', sysroot]);
  run('ostree', ['admin', 'os-init', `--sysroot=${sysroot}`, 'default']);
  run('ostree', [`--repo=${sysroot}/ostree/repo`, 'commit', `--tree=dir=${tree}`, '-b', 'test']);
  for (let i = 0; i < deploys; i++) run('ostree', ['admin', 'deploy', `--sysroot=${sysroot}`, '--os=default', 'test']);
  return sysroot;
}
