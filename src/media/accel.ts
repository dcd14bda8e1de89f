/**
 * Whether KVM works. /dev/kvm can exist and still fail every real guest (nested setups
 * where the firmware's first instructions hit "KVM internal error"), so the probe boots
 * OVMF under KVM for a moment and watches for that; the answer is cached per process.
 * BASALT_VM_ACCEL=kvm|tcg skips the probe.
 */
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { BasaltError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { rm } from 'node:fs/promises';
import { findOvmf, privateVars } from './firmware.js';

export type Accel = 'kvm' | 'tcg';

let cached: Promise<Accel> | undefined;

export function chooseAccel(): Promise<Accel> {
  const forced = process.env.BASALT_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return Promise.resolve(forced);
  if (forced) return Promise.reject(new BasaltError('usage', `BASALT_VM_ACCEL="${forced}" must be kvm or tcg`));
  cached ??= probeKvm();
  return cached;
}

const PROBE_MS = 3000;

async function probeKvm(): Promise<Accel> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return 'tcg';
  }
  const ovmf = await findOvmf().catch(() => undefined);
  if (!ovmf) return 'tcg';
  const dir = await makeTempDir('kvm-probe');
  try {
    const vars = await privateVars(ovmf, dir);
    return await new Promise<Accel>((resolve) => {
      const child = spawn(
        'qemu-system-x86_64',
        ['-accel', 'kvm', '-machine', 'q35', '-cpu', 'host', '-m', '128', '-nodefaults', '-display', 'none', '-no-reboot',
          '-drive', `if=pflash,format=raw,readonly=on,file=${ovmf.code}`, '-drive', `if=pflash,format=raw,file=${vars}`],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      let settled = false;
      const finish = (accel: Accel): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
        resolve(accel);
      };
      const timer = setTimeout(() => finish('kvm'), PROBE_MS); // still running cleanly: KVM works
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/KVM internal error|failed to set MSR|emulation failure|Could not access KVM/i.test(stderr)) finish('tcg');
      });
      child.on('error', () => finish('tcg'));
      child.on('exit', () => finish('tcg'));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
