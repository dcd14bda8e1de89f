/**
 * Acceptance under QEMU (TCG): both installer layouts, remastered with the appliance's
 * kickstart and extra kernel arguments, boot under BIOS and under UEFI; the initramfs finds
 * the device labelled with the volume id, mounts it and prints the kickstart and
 * /proc/cmdline on the serial console. Four boots in all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { requireTool, SHARED, tempDir } from '../harness/tools.js';
import { withVm } from '../harness/vm.js';
import { KS_BEGIN, KS_END, grubMkrescueIso, loraxStyleIso } from './fixtures.js';

const KICKSTART = join(SHARED, 'examples', 'appliance', 'mykickstart.ks');
const EXTRA_ARGS = 'basalt.remastered=yes rd.basalt=42';

async function remastered(layout: 'grub-mkrescue' | 'lorax'): Promise<string> {
  const iso = layout === 'lorax' ? await loraxStyleIso() : await grubMkrescueIso();
  const out = join(await tempDir(`iso-boot-${layout}`), 'remastered.iso');
  basaltOk(['iso', 'remaster', iso, out, '--ks', KICKSTART, '-c', EXTRA_ARGS]);
  assert.equal(spawnSync('checkisomd5', [out]).status, 0, 'checkisomd5 passes');
  return out;
}

for (const layout of ['grub-mkrescue', 'lorax'] as const) {
  for (const firmware of ['bios', 'uefi'] as const) {
    test(`remastered ${layout} ISO boots under ${firmware.toUpperCase()} and the initramfs reads the kickstart by label`, async () => {
      requireTool('qemu-system-x86_64');
      requireTool('checkisomd5');
      const iso = await remastered(layout);
      const kickstart = await readFile(KICKSTART, 'utf8');
      await withVm(`iso ${layout} ${firmware}`, { drives: [iso], firmware, memoryMiB: 1024, accel: 'tcg', serialLog: join(iso, '..', 'serial.log') }, async (vm) => {
        const m = await vm.waitForSerial(new RegExp(`${KS_BEGIN}\\r?\\n([\\s\\S]*?)${KS_END}[\\s\\S]*?cmdline: ([^\\r\\n]*)\\r?\\n`), 300_000);
        const printed = (m[1] ?? '').replace(/\r/g, '');
        assert.equal(printed.trim(), kickstart.trim(), 'the kickstart printed by the guest is the one added');
        const cmdline = m[2] ?? '';
        for (const arg of EXTRA_ARGS.split(' ')) assert.ok(cmdline.split(' ').includes(arg), `${arg} is on the kernel command line: ${cmdline}`);
        assert.match(cmdline, /inst\.ks=hd:LABEL=[^ ]+:\/mykickstart\.ks/);
      });
    });
  }
}
