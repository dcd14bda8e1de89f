/**
 * GUIDs as GPT stores them (the first three fields little-endian, the rest as bytes), and
 * deterministic ones derived from a seed so the same inputs give the same disk.
 */
import { createHash } from 'node:crypto';
import { BasaltError } from '../oci/errors.js';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

/** 16 bytes in GPT's mixed-endian encoding. */
export function guidToBytes(guid: string): Buffer {
  if (!isGuid(guid)) throw new BasaltError('invalid', `"${guid}" is not a GUID (expected 8-4-4-4-12 hex digits)`);
  const hex = guid.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  out.writeUInt32LE(b.readUInt32BE(0), 0);
  out.writeUInt16LE(b.readUInt16BE(4), 4);
  out.writeUInt16LE(b.readUInt16BE(6), 6);
  b.copy(out, 8, 8, 16);
  return out;
}

/** Upper-case text form (as sfdisk and sgdisk print GUIDs). */
export function guidFromBytes(bytes: Uint8Array, offset = 0): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset + offset, 16);
  const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');
  const tail = b.subarray(8, 16).toString('hex');
  return `${hex(b.readUInt32LE(0), 8)}-${hex(b.readUInt16LE(4), 4)}-${hex(b.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`.toUpperCase();
}

/**
 * A version-4-shaped GUID derived from `seed` and `purpose` (SHA-256), so a disk built twice
 * from the same inputs carries the same disk, partition and filesystem identifiers.
 */
export function deterministicGuid(seed: string, purpose: string): string {
  const h = createHash('sha256').update(`basalt-guid\0${seed}\0${purpose}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`.toUpperCase();
}
