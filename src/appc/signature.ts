import { readFile } from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';

/** ACIs are signed whole (detached signature over the file's bytes) and held in memory to do it. */
const MAX_SIGNED_BYTES = 2 * 1024 * 1024 * 1024;

async function readAll(path: string, what: string): Promise<Buffer> {
  try {
    const data = await readFile(path);
    if (data.length > MAX_SIGNED_BYTES) throw new BasaltError('unsupported', `${what} ${path} is larger than 2 GiB, which basalt cannot sign or verify`);
    return data;
  } catch (e) {
    throw ioError(`${what} ${path}`, e);
  }
}

/** An OpenPGP key file, armored or binary; private keys yield their public part when asked. */
export async function readKeyFile(path: string): Promise<openpgp.Key[]> {
  const data = await readAll(path, 'key file');
  try {
    const text = data.toString('utf8');
    if (text.includes('-----BEGIN PGP')) return await (await import('openpgp')).readKeys({ armoredKeys: text });
    return await (await import('openpgp')).readKeys({ binaryKeys: new Uint8Array(data) });
  } catch (e) {
    throw new BasaltError('invalid', `${path} is not an OpenPGP key (${(e as Error).message})`, { hint: 'export it with gpg --armor --export KEYID', cause: e });
  }
}

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toLowerCase();
}

/** Writes `ACI.asc`: an armored detached signature over the ACI file by `keyFile`'s private key. */
export async function signAci(aciPath: string, keyFile: string, options: { passphrase?: string; out?: string } = {}): Promise<{ signature: string; fingerprint: string }> {
  const keys = await readKeyFile(keyFile);
  const priv = keys.find((k) => k.isPrivate()) as openpgp.PrivateKey | undefined;
  if (!priv) throw new BasaltError('usage', `${keyFile} holds no private key`, { hint: 'export one with gpg --armor --export-secret-keys KEYID' });
  let signingKey = priv;
  if (!priv.isDecrypted()) {
    if (options.passphrase === undefined) throw new BasaltError('usage', `the private key in ${keyFile} is protected by a passphrase`, { hint: 'pass --passphrase-file FILE' });
    try {
      signingKey = await (await import('openpgp')).decryptKey({ privateKey: priv, passphrase: options.passphrase });
    } catch (e) {
      throw new BasaltError('auth', `the passphrase does not unlock the key in ${keyFile}`, { cause: e });
    }
  }
  const message = await (await import('openpgp')).createMessage({ binary: new Uint8Array(await readAll(aciPath, 'ACI')) });
  const signature = await (await import('openpgp')).sign({ message, signingKeys: signingKey, detached: true, format: 'armored' });
  const out = options.out ?? `${aciPath}.asc`;
  await writeFileAtomic(out, signature);
  return { signature, fingerprint: fingerprintOf(priv) };
}

/**
 * Checks a detached signature over `data` against `trusted` keys. Returns the fingerprint of
 * the key that made it; throws 'policy' when no trusted key made a valid signature.
 */
export async function verifyDetached(data: Buffer, armoredSignature: string, trusted: openpgp.Key[], what: string): Promise<string> {
  let signature: openpgp.Signature;
  try {
    signature = await (await import('openpgp')).readSignature({ armoredSignature });
  } catch (e) {
    throw new BasaltError('invalid', `${what}: the signature is not an armored OpenPGP signature (${(e as Error).message})`, { cause: e });
  }
  if (trusted.length === 0) throw new BasaltError('policy', `${what}: no trusted key for this image name`, { hint: 'trust the signer\'s key with basalt aci trust --prefix NAME KEYFILE' });
  const message = await (await import('openpgp')).createMessage({ binary: new Uint8Array(data) });
  const result = await (await import('openpgp')).verify({ message, signature, verificationKeys: trusted, expectSigned: false });
  const failures: string[] = [];
  for (const sig of result.signatures) {
    try {
      await sig.verified;
      const key = trusted.find((k) => k.getKeys(sig.keyID).length > 0);
      if (key) return fingerprintOf(key);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  const signers = result.signatures.map((s) => s.keyID.toHex()).join(', ');
  throw new BasaltError('policy', `${what}: the signature was not made by a trusted key (signed by key ID ${signers || 'none'}${failures.length ? `: ${failures.join('; ')}` : ''})`, {
    hint: 'trust the signer\'s key for this name\'s prefix with basalt aci trust, or check that the image was not tampered with',
  });
}
