/**
 * Byte sizes written by people: "10 GiB", "512MB", "4G", 1073741824. Units follow
 * bootc-image-builder (kB/MB/GB/TB decimal, KiB/MiB/GiB/TiB binary); the one-letter forms
 * K/M/G/T are binary, as qemu-img and mkfs read them.
 */
import { BasaltError } from '../oci/errors.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: MiB,
  gib: GiB,
  tib: 1024 * GiB,
  k: 1024,
  m: MiB,
  g: GiB,
  t: 1024 * GiB,
};

/** Parses a size; throws 'invalid' naming `what` when it is not one. */
export function parseByteSize(value: string | number, what: string): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new BasaltError('invalid', `${what}: ${value} is not a whole number of bytes`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const factor = m ? UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || factor === undefined)
    throw new BasaltError('invalid', `${what}: "${value}" is not a size`, { hint: 'write a number of bytes or a number with a unit: "10 GiB", "512 MiB", "20GB"' });
  const bytes = Math.ceil(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new BasaltError('invalid', `${what}: "${value}" is too large`);
  return bytes;
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

export function alignDown(n: number, alignment: number): number {
  return Math.floor(n / alignment) * alignment;
}

/** "1.5 GiB"-style text for messages. */
export function formatBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(1)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${n} bytes`;
}
