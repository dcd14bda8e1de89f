import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { decryptPrivateKey, encryptPrivateKey, pemDecode, pemEncode, SIGSTORE_KEY_LABEL } from './cosign-key.js';

/**
 * Signing keys in the files cosign uses: `cosign.key` (encrypted PKCS#8, see cosign-key.ts)
 * and `cosign.pub` ("PUBLIC KEY", PKIX). Signatures are what cosign and containers/image
 * make: ECDSA over SHA-256, ASN.1 DER (RSA keys: PKCS#1 v1.5 SHA-256; Ed25519: pure).
 */

/** Where the passphrase comes from: BASALT_PASSWORD, then cosign's COSIGN_PASSWORD, else a prompt. */
export type PassphraseSource = () => Promise<string>;

export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.BASALT_PASSWORD ?? env.COSIGN_PASSWORD;
}

export interface GeneratedKeyPair {
  privateKeyPath: string;
  publicKeyPath: string;
  publicKeyPem: string;
}

/** Generates an ECDSA P-256 pair and writes `<prefix>.key` and `<prefix>.pub`, refusing to overwrite. */
export async function generateKeyPair(prefix: string, passphrase: string, options: { force?: boolean } = {}): Promise<GeneratedKeyPair> {
  const privateKeyPath = `${prefix}.key`;
  const publicKeyPath = `${prefix}.pub`;
  if (!options.force)
    for (const p of [privateKeyPath, publicKeyPath])
      if (await exists(p)) throw new BasaltError('usage', `${p} already exists`, { hint: 'choose another --output-key-prefix, or pass --force to replace it' });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const publicKeyPem = pemEncode('PUBLIC KEY', publicKey.export({ format: 'der', type: 'spki' }));
  const encrypted = await encryptPrivateKey(pkcs8, passphrase, SIGSTORE_KEY_LABEL);
  await writeFileAtomic(privateKeyPath, encrypted, 0o600);
  await writeFileAtomic(publicKeyPath, publicKeyPem, 0o644);
  return { privateKeyPath, publicKeyPath, publicKeyPem };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw ioError(`reading ${what} ${path}`, e);
  }
}

/**
 * Loads a private key: cosign's encrypted form (asks for the passphrase), or an unencrypted
 * PKCS#8 / SEC1 PEM (what `openssl` writes), which needs none.
 */
export async function loadPrivateKey(path: string, passphrase: PassphraseSource): Promise<KeyObject> {
  const text = await readText(path, 'private key');
  const { label } = pemDecode(text, `private key ${path}`);
  if (label.startsWith('ENCRYPTED ') && label !== 'ENCRYPTED PRIVATE KEY') {
    const der = await decryptPrivateKey(text, await passphrase(), `private key ${path}`);
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  }
  try {
    return label === 'ENCRYPTED PRIVATE KEY' ? createPrivateKey({ key: text, passphrase: await passphrase() }) : createPrivateKey(text);
  } catch (e) {
    throw new BasaltError('invalid', `private key ${path} cannot be read (${(e as Error).message})`, { hint: 'give a key written by basalt keygen or cosign generate-key-pair' });
  }
}

/** Parses a public key from PEM text ("PUBLIC KEY"); `what` names it in errors. */
export function parsePublicKey(pem: string | Buffer, what: string): KeyObject {
  const text = typeof pem === 'string' ? pem : pem.toString('utf8');
  const { label } = pemDecode(text, what);
  if (label !== 'PUBLIC KEY') throw new BasaltError('invalid', `${what} is a "${label}" PEM block, not a PUBLIC KEY`, { hint: 'give the .pub file (cosign.pub), not the private key' });
  try {
    return createPublicKey(text);
  } catch (e) {
    throw new BasaltError('invalid', `${what} cannot be read as a public key (${(e as Error).message})`);
  }
}

export async function loadPublicKey(path: string): Promise<KeyObject> {
  return parsePublicKey(await readText(path, 'public key'), `public key ${path}`);
}

/** The public half of a private key. */
export function publicKeyOf(privateKey: KeyObject): KeyObject {
  return createPublicKey(privateKey);
}

function hashFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
}

/** Signs `data` the way cosign does; returns the raw signature bytes. */
export function signBytes(data: Buffer, privateKey: KeyObject): Buffer {
  return cryptoSign(hashFor(privateKey), data, privateKey);
}

/** Whether `signature` is a valid signature of `data` by `publicKey`. */
export function verifyBytes(data: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  try {
    return cryptoVerify(hashFor(publicKey), data, publicKey, signature);
  } catch {
    return false; // malformed DER and the like: not a valid signature
  }
}
