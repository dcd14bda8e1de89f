import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TrustedRoot } from '@sigstore/protobuf-specs';
// The TUF seeds @sigstore/tuf ships: the public-good root, read offline (esbuild inlines it,
// so the bundled CLI on the device needs no node_modules and no network).
import tufSeeds from '@sigstore/tuf/seeds.json' with { type: 'json' };
import { BasaltError } from '../../oci/errors.js';

const PUBLIC_GOOD_TUF_URL = 'https://tuf-repo-cdn.sigstore.dev';

/**
 * The trust root the verifier accepts: `TrustedRoot` from sigstore's protobuf-specs (the
 * parsed form of a `trusted_root.json`: Fulcio CAs, Rekor logs, CT logs, TSAs, each with the
 * time range its key is valid for).
 */
export type SigstoreTrustedRoot = TrustedRoot;

let publicGood: TrustedRoot | undefined;

/**
 * The Sigstore public-good trust root as shipped inside @sigstore/tuf (no TUF update: it is
 * the snapshot of the installed package; bundles signed after a key rotation it does not know
 * fail as "untrusted").
 */
export function publicGoodTrustedRoot(): TrustedRoot {
  if (publicGood === undefined) {
    const seeds = tufSeeds as Record<string, { targets?: Record<string, string> }>;
    const encoded = seeds[PUBLIC_GOOD_TUF_URL]?.targets?.['trusted_root.json'];
    if (encoded === undefined)
      throw new BasaltError('invalid', '@sigstore/tuf/seeds.json carries no trusted_root.json for the public-good instance', {
        hint: 'the installed @sigstore/tuf is not the version basalt was built with; pass a trusted root explicitly',
      });
    publicGood = parseTrustedRoot(Buffer.from(encoded, 'base64'), 'the public-good trusted root in @sigstore/tuf');
  }
  return publicGood;
}

/**
 * Parses a trusted_root.json (bytes or an already parsed JSON value) and checks what the
 * sigstore library would otherwise paper over: a key whose validity has no start would be
 * taken as valid since 1970, so it is refused, as the trust-root specification requires.
 */
export function parseTrustedRoot(input: Buffer | unknown, what = 'trusted root'): TrustedRoot {
  let json: unknown = input;
  if (Buffer.isBuffer(input)) {
    try {
      json = JSON.parse(input.toString('utf8'));
    } catch (e) {
      throw new BasaltError('invalid', `${what}: not JSON (${(e as Error).message})`, { hint: 'give a trusted_root.json as sigstore publishes it' });
    }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new BasaltError('invalid', `${what}: not a JSON object`, { hint: 'give a trusted_root.json as sigstore publishes it' });
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(json);
  } catch (e) {
    throw new BasaltError('invalid', `${what}: ${(e as Error).message}`, { hint: 'give a trusted_root.json as sigstore publishes it' });
  }
  if (!root.mediaType.startsWith('application/vnd.dev.sigstore.trustedroot'))
    throw new BasaltError('invalid', `${what}: media type ${JSON.stringify(root.mediaType)} is not a sigstore trusted root`, { hint: 'give a trusted_root.json as sigstore publishes it' });
  const problems: string[] = [];
  const noStart = (where: string): number => problems.push(`${where} has a key validity with no start`);
  root.tlogs.forEach((t, i) => {
    if (t.publicKey?.rawBytes === undefined || t.logId === undefined) problems.push(`tlogs[${i}] (${t.baseUrl}) has no key or log id`);
    else if (t.publicKey.validFor?.start === undefined) noStart(`tlogs[${i}] (${t.baseUrl})`);
  });
  root.ctlogs.forEach((t, i) => t.publicKey?.validFor?.start === undefined && noStart(`ctlogs[${i}] (${t.baseUrl})`));
  root.certificateAuthorities.forEach((c, i) => c.validFor?.start === undefined && noStart(`certificateAuthorities[${i}] (${c.uri})`));
  root.timestampAuthorities.forEach((c, i) => c.validFor?.start === undefined && noStart(`timestampAuthorities[${i}] (${c.uri})`));
  if (problems.length > 0)
    throw new BasaltError('invalid', `${what}: ${problems.join('; ')}`, {
      hint: 'a trust root must say from when each key is trusted; fix or re-fetch the trusted_root.json',
    });
  return root;
}

/**
 * Trust given as keys and certificates rather than a trusted_root.json: what
 * containers-policy.json's `sigstoreSigned` holds (`fulcio.caPath`/`caData`,
 * `rekorPublicKeyPath`/`Data`). Each is trusted for all time, as there.
 */
export interface ExplicitTrust {
  /** PEM certificates of the Fulcio CA, root and intermediates, in any order (one or more per Buffer). */
  certificateAuthorities?: Buffer[];
  /** PEM public keys of the Rekor (v1) logs whose entries are accepted. */
  transparencyLogKeys?: Buffer[];
  /** PEM public keys of the certificate-transparency logs whose SCTs are accepted. */
  ctLogKeys?: Buffer[];
}

const ALL_TIME = { start: '1970-01-01T00:00:00Z' };

function pemBlocks(pem: Buffer, label: string, what: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`, 'g');
  const blocks = [...pem.toString('utf8').matchAll(re)].map((m) => Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64'));
  if (blocks.length === 0) throw new BasaltError('usage', `${what}: no PEM ${label.toLowerCase()} in it`, { hint: `give ${label.toLowerCase()}s in PEM form` });
  return blocks;
}

function logEntry(pem: Buffer, what: string, index: number): Record<string, unknown> {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new BasaltError('usage', `${what} ${index + 1} is not a PEM public key (${(e as Error).message})`);
  }
  const der = key.export({ type: 'spki', format: 'der' });
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const details =
    key.asymmetricKeyType === 'ed25519' ? 'PKIX_ED25519' : curve === 'prime256v1' ? 'PKIX_ECDSA_P256_SHA_256' : curve === 'secp384r1' ? 'PKIX_ECDSA_P384_SHA_384' : undefined;
  if (details === undefined) throw new BasaltError('unsupported', `${what} ${index + 1}: only ECDSA P-256/P-384 and Ed25519 log keys are supported`);
  return {
    // Rekor v1 entries name their log by key id alone; there is no URL to check against.
    baseUrl: `https://configured-log-${index + 1}.invalid`,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: der.toString('base64'), keyDetails: details, validFor: ALL_TIME },
    logId: { keyId: createHash('sha256').update(der).digest('base64') },
  };
}

/** A trusted root (trusted_root.json form) holding exactly the given CAs and log keys. */
export function trustedRootFromKeys(trust: ExplicitTrust): Record<string, unknown> {
  const certificates = (trust.certificateAuthorities ?? []).flatMap((pem, i) => pemBlocks(pem, 'CERTIFICATE', `certificate authority ${i + 1}`));
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: (trust.transparencyLogKeys ?? []).map((k, i) => logEntry(k, 'transparency log key', i)),
    ctlogs: (trust.ctLogKeys ?? []).map((k, i) => logEntry(k, 'certificate transparency log key', i)),
    certificateAuthorities:
      certificates.length === 0 ? [] : [{ subject: {}, uri: 'https://configured-ca.invalid', certChain: { certificates: certificates.map((c) => ({ rawBytes: c.toString('base64') })) }, validFor: ALL_TIME }],
    timestampAuthorities: [],
  };
}
