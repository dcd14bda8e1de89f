import { randomBytes, scrypt as scryptCallback } from 'node:crypto';
import { secretbox } from '@noble/ciphers/salsa';
import { BasaltError } from '../oci/errors.js';

/**
 * cosign's encrypted private key: a PEM block whose body is the JSON that
 * go-securesystemslib's `encrypted` package writes — scrypt derives a 32-byte key from the
 * passphrase, NaCl secretbox (XSalsa20-Poly1305) seals the PKCS#8 DER of the key.
 * cosign 2 writes the label "ENCRYPTED SIGSTORE PRIVATE KEY"; cosign 1 (and the
 * containers/image copy of its loader in older podman) "ENCRYPTED COSIGN PRIVATE KEY".
 */
export const SIGSTORE_KEY_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_KEY_LABEL = 'ENCRYPTED COSIGN PRIVATE KEY';
const ACCEPTED_LABELS = [SIGSTORE_KEY_LABEL, COSIGN_KEY_LABEL];

/** go-securesystemslib's defaults (its "standard" scrypt parameters). */
const SCRYPT = { N: 32768, r: 8, p: 1 } as const;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
const KEY_BYTES = 32;
/** Refuse absurd work factors from a hostile file (N=2^20 is go-securesystemslib's "sensitive"). */
const MAX_SCRYPT_N = 1 << 20;

interface EncryptedKeyJson {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

function scrypt(passphrase: Buffer, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Node's default memory cap (32 MiB) is exactly 128·N·r for N=32768, r=8: too tight.
    const maxmem = 256 * params.N * params.r + (1 << 20);
    scryptCallback(passphrase, salt, KEY_BYTES, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** PEM armour with 64-column base64, as Go's encoding/pem writes it. */
export function pemEncode(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** The first PEM block in `text`: its label and decoded body. */
export function pemDecode(text: string, what: string): { label: string; body: Buffer } {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) throw new BasaltError('invalid', `${what} is not a PEM file`, { hint: 'expected a -----BEGIN ...----- block' });
  const body = (m[2] ?? '').replace(/^[A-Za-z-]+:.*$/gm, '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new BasaltError('invalid', `${what}: the PEM body is not base64`);
  return { label: m[1] as string, body: Buffer.from(body, 'base64') };
}

/** Seals PKCS#8 DER under the passphrase; returns the PEM text cosign writes. */
export async function encryptPrivateKey(pkcs8Der: Buffer, passphrase: string, label = SIGSTORE_KEY_LABEL): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = await scrypt(Buffer.from(passphrase, 'utf8'), salt, SCRYPT);
  const sealed = secretbox(key, nonce).seal(pkcs8Der);
  // Field order as Go's encoding/json writes the struct.
  const doc: EncryptedKeyJson = {
    kdf: { name: 'scrypt', params: { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return pemEncode(label, Buffer.from(JSON.stringify(doc)));
}

function parseEncryptedJson(body: Buffer, what: string): EncryptedKeyJson {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BasaltError('invalid', `${what}: the encrypted key is not JSON`, { hint: 'the file is corrupt or not a cosign key' });
  }
  const d = doc as Partial<EncryptedKeyJson> | null;
  const p = d?.kdf?.params;
  const ok =
    d?.kdf?.name === 'scrypt' &&
    typeof d.kdf.salt === 'string' &&
    p !== undefined &&
    [p.N, p.r, p.p].every((n) => Number.isInteger(n) && n > 0) &&
    d.cipher?.name === 'nacl/secretbox' &&
    typeof d.cipher.nonce === 'string' &&
    typeof d.ciphertext === 'string';
  if (!ok) throw new BasaltError('unsupported', `${what}: only scrypt + nacl/secretbox encrypted keys are understood`, { hint: 'generate the key with basalt keygen or cosign generate-key-pair' });
  if (p.N > MAX_SCRYPT_N || (p.N & (p.N - 1)) !== 0) throw new BasaltError('invalid', `${what}: scrypt N=${p.N} is not a power of two up to ${MAX_SCRYPT_N}`);
  return d as EncryptedKeyJson;
}

/** Opens a cosign encrypted private key; returns its PKCS#8 DER. */
export async function decryptPrivateKey(pemText: string, passphrase: string, what: string): Promise<Buffer> {
  const { label, body } = pemDecode(pemText, what);
  if (!ACCEPTED_LABELS.includes(label))
    throw new BasaltError('unsupported', `${what} is a "${label}" PEM block, not a cosign private key`, { hint: `expected ${ACCEPTED_LABELS.join(' or ')}` });
  const doc = parseEncryptedJson(body, what);
  const salt = Buffer.from(doc.kdf.salt, 'base64');
  const nonce = Buffer.from(doc.cipher.nonce, 'base64');
  if (nonce.length !== NONCE_BYTES) throw new BasaltError('invalid', `${what}: the secretbox nonce is ${nonce.length} bytes, not ${NONCE_BYTES}`);
  const key = await scrypt(Buffer.from(passphrase, 'utf8'), salt, doc.kdf.params);
  try {
    return Buffer.from(secretbox(key, nonce).open(Buffer.from(doc.ciphertext, 'base64')));
  } catch {
    throw new BasaltError('auth', `${what}: wrong passphrase (or the key file is corrupt)`, { hint: 'give the passphrase in BASALT_PASSWORD or COSIGN_PASSWORD, or type it at the prompt' });
  }
}
