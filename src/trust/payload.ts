import { BasaltError } from '../oci/errors.js';
import { isDigest } from '../oci/digest.js';

/**
 * The simple-signing payload (containers-signature(5)), parsed as strictly as
 * containers/image does: the top level has exactly `critical` and `optional`, `critical`
 * exactly `type`, `image` and `identity`, each of those exactly its one field. An unknown
 * critical field means a signer asserted something basalt cannot check, so it is refused.
 */
export const SIMPLE_SIGNING_TYPE = 'atomic container signature';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';
export type PayloadType = typeof SIMPLE_SIGNING_TYPE | typeof COSIGN_SIGNATURE_TYPE;

export interface SignaturePayload {
  type: PayloadType;
  dockerReference: string;
  manifestDigest: string;
  /** `optional` as signed (creator, timestamp, cosign annotations); never trusted for decisions. */
  optional: Record<string, unknown> | null;
}

/** Encodes a payload; `optional` keys are written as given (basalt adds creator and timestamp). */
export function createPayload(type: PayloadType, dockerReference: string, manifestDigest: string, optional: Record<string, unknown> | null): Buffer {
  const doc = {
    critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': manifestDigest }, type },
    optional,
  };
  return Buffer.from(JSON.stringify(doc));
}

function invalid(what: string, why: string): never {
  throw new BasaltError('invalid', `${what}: ${why}`, { hint: 'the signature was not made for this tool, or was tampered with; it is not trusted' });
}

function object(value: unknown, what: string, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(what, `"${name}" is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Checks `obj` has exactly the keys `keys` (containers/image's paranoid unmarshalling). */
function exactKeys(obj: Record<string, unknown>, keys: string[], what: string, name: string): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) invalid(what, `unknown field "${k}" in ${name}`);
  for (const k of keys) if (!(k in obj)) invalid(what, `${name} lacks "${k}"`);
}

function string(value: unknown, what: string, name: string): string {
  if (typeof value !== 'string') invalid(what, `"${name}" is not a string`);
  return value;
}

/** Rejects JSON with duplicate keys, which two parsers could read differently. */
function assertNoDuplicateKeys(text: string, what: string): void {
  // Runs on text JSON.parse accepted: tracks each open container and the keys of objects.
  const stack: { keys: Set<string> | undefined }[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const keys = stack[stack.length - 1]?.keys;
        if (keys?.has(key)) invalid(what, `duplicate key "${key}"`);
        keys?.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push({ keys: new Set() });
      expectKey = true;
    } else if (c === '[') stack.push({ keys: undefined });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack[stack.length - 1]?.keys !== undefined;
  }
}

/**
 * Parses a payload strictly. `accept` lists the signature types the caller's format allows
 * (cosign signatures carry the cosign type; GPG simple signatures the atomic type).
 */
export function parsePayload(bytes: Buffer, accept: readonly PayloadType[], what: string): SignaturePayload {
  const text = bytes.toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    invalid(what, 'the payload is not JSON');
  }
  assertNoDuplicateKeys(text, what);
  const top = object(doc, what, 'payload');
  exactKeys(top, ['critical', 'optional'], what, 'the payload');
  const critical = object(top.critical, what, 'critical');
  exactKeys(critical, ['type', 'image', 'identity'], what, 'critical');
  const type = string(critical.type, what, 'critical.type');
  if (!(accept as readonly string[]).includes(type)) invalid(what, `signature type "${type}" is not ${accept.map((t) => `"${t}"`).join(' or ')}`);
  const image = object(critical.image, what, 'critical.image');
  exactKeys(image, ['docker-manifest-digest'], what, 'critical.image');
  const manifestDigest = string(image['docker-manifest-digest'], what, 'docker-manifest-digest');
  if (!isDigest(manifestDigest)) invalid(what, `"${manifestDigest}" is not a digest`);
  const identity = object(critical.identity, what, 'critical.identity');
  exactKeys(identity, ['docker-reference'], what, 'critical.identity');
  const dockerReference = string(identity['docker-reference'], what, 'docker-reference');
  // cosign writes "optional": null when there are no annotations.
  const optional = top.optional === null ? null : object(top.optional, what, 'optional');
  return { type: type as PayloadType, dockerReference, manifestDigest, optional };
}
