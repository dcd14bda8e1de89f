/**
 * UEFI firmware for QEMU: Debian's ovmf package. Each VM gets its own copy of the variable
 * store, since the firmware writes boot entries into it and the package's copy must stay
 * pristine.
 */
import { access, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';

export interface OvmfFiles {
  code: string;
  vars: string;
}

/** Code/vars pairs that belong together (the 4M build needs the 4M store). */
const CANDIDATES: ReadonlyArray<OvmfFiles> = [
  { code: '/usr/share/OVMF/OVMF_CODE.fd', vars: '/usr/share/OVMF/OVMF_VARS.fd' },
  { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
  { code: '/usr/share/edk2/ovmf/OVMF_CODE.fd', vars: '/usr/share/edk2/ovmf/OVMF_VARS.fd' },
];

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

export async function findOvmf(): Promise<OvmfFiles> {
  const fromEnv = process.env.BASALT_OVMF_CODE && process.env.BASALT_OVMF_VARS ? [{ code: process.env.BASALT_OVMF_CODE, vars: process.env.BASALT_OVMF_VARS }] : [];
  for (const c of [...fromEnv, ...CANDIDATES]) if ((await exists(c.code)) && (await exists(c.vars))) return c;
  throw new BasaltError('tool', 'UEFI firmware (OVMF) is not installed', { hint: 'install the ovmf package (apt-get install ovmf), or boot with --bios' });
}

/** A private, writable copy of the variable store inside `dir`. */
export async function privateVars(ovmf: OvmfFiles, dir: string): Promise<string> {
  const target = join(dir, 'OVMF_VARS.fd');
  try {
    await copyFile(ovmf.vars, target);
  } catch (e) {
    throw ioError(`copying ${ovmf.vars}`, e);
  }
  return target;
}
