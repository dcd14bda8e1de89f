import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ASN1Obj, X509Certificate } from '@sigstore/core';
import { BasaltError, ioError } from '../oci/errors.js';
import type { FulcioRule } from './policy.js';
import type { RekorEntry } from './rekor-set.js';

/**
 * Keyless cosign signatures: the signer is a short-lived Fulcio certificate (annotation
 * `dev.sigstore.cosign/certificate`, intermediates in `.../chain`) naming an e-mail identity
 * and the OIDC issuer that vouched for it. The policy trusts a CA and one identity; the time
 * the certificate must be valid at comes from Rekor (see rekor-set.ts), since the certificate
 * itself lives ten minutes. This module is loaded only for policies with a `fulcio` entry.
 */
export interface FulcioTrust {
  roots: X509Certificate[];
  oidcIssuer: string;
  subjectEmail: string;
}

/** Fulcio's issuer extensions: v1 holds the raw string, v2 a DER UTF8String. */
const ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const MAX_CHAIN = 6;

export async function loadFulcioTrust(rule: FulcioRule): Promise<FulcioTrust> {
  const pems: { text: string; what: string }[] = rule.ca.data.map((d, i) => ({ text: d.toString('utf8'), what: `fulcio.caData[${i}] of the policy` }));
  for (const path of rule.ca.paths) {
    try {
      pems.push({ text: await readFile(path, 'utf8'), what: `fulcio CA ${path}` });
    } catch (e) {
      throw ioError(`reading the fulcio CA ${path} named by the policy`, e);
    }
  }
  const roots = pems.flatMap(({ text, what }) => {
    const certs = parseCertificates(text);
    if (certs === undefined || certs.length === 0) throw new BasaltError('invalid', `${what} holds no PEM certificate`, { hint: 'give the Fulcio CA certificate in PEM form' });
    return certs;
  });
  return { roots, oidcIssuer: rule.oidcIssuer, subjectEmail: rule.subjectEmail };
}

/** Every certificate in a PEM text; undefined when one of them is not a certificate. */
function parseCertificates(text: string): X509Certificate[] | undefined {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  try {
    return blocks.map((b) => X509Certificate.parse(b));
  } catch {
    return undefined;
  }
}

/**
 * Checks the signing certificate of one signature and
 * returns its public key, or why it cannot be trusted. `logged` is the signature's verified
 * Rekor entry: the certificate must be valid at its time and be the one it logged.
 */
export function verifyFulcioCertificate(certPem: string | undefined, chainPem: string | undefined, trust: FulcioTrust, logged: RekorEntry): { key: KeyObject } | { reason: string } {
  const at = new Date(logged.integratedTime * 1000);
  if (certPem === undefined) return { reason: 'has no certificate (dev.sigstore.cosign/certificate), which a fulcio policy requires' };
  const leaf = parseCertificates(certPem)?.[0];
  const intermediates = chainPem === undefined ? [] : parseCertificates(chainPem);
  if (!leaf || intermediates === undefined) return { reason: 'has a certificate or chain annotation that is not a PEM certificate' };
  const chain = chainTo(leaf, intermediates, trust.roots, at);
  if (typeof chain === 'string') return { reason: chain };
  const email = leaf.extSubjectAltName?.rfc822Name;
  if (email !== trust.subjectEmail) return { reason: `has a certificate for ${email === undefined ? 'no e-mail identity' : `"${email}"`}, not the policy's subjectEmail "${trust.subjectEmail}"` };
  const issuer = oidcIssuerOf(leaf);
  if (issuer !== trust.oidcIssuer) return { reason: `has a certificate from OIDC issuer ${issuer === undefined ? '(none)' : `"${issuer}"`}, not the policy's oidcIssuer "${trust.oidcIssuer}"` };
  const loggedCert = parseCertificates(logged.signerPem.toString('utf8'))?.[0];
  if (!loggedCert?.equals(leaf)) return { reason: 'has a Rekor entry that logs another certificate than the one attached' };
  return { key: createPublicKey({ key: leaf.publicKey, format: 'der', type: 'spki' }) };
}

/** Walks issuer links from the leaf to a trusted root; every certificate must be valid at `at`. */
function chainTo(leaf: X509Certificate, intermediates: X509Certificate[], roots: X509Certificate[], at: Date): true | string {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    if (!current.validForDate(at)) return `has a certificate chain that was not valid at the logged time ${at.toISOString()}`;
    const root = roots.find((r) => issuedBy(current, r));
    if (root) return root.validForDate(at) ? true : `chains to a Fulcio CA that was not valid at ${at.toISOString()}`;
    const next = intermediates.find((c) => c.isCA && issuedBy(current, c));
    if (!next) return 'has a certificate that does not chain to the policy\'s Fulcio CA';
    current = next;
  }
  return 'has a certificate chain longer than basalt follows';
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  if (!cert.issuer.equals(issuer.subject)) return false;
  try {
    return cert.verify(issuer);
  } catch {
    return false;
  }
}

function oidcIssuerOf(cert: X509Certificate): string | undefined {
  const v2 = cert.extension(ISSUER_V2);
  if (v2) {
    try {
      const obj = ASN1Obj.parseBuffer(v2.value);
      return obj.tag.number === 12 ? obj.value.toString('utf8') : undefined; // 12: UTF8String
    } catch {
      return undefined;
    }
  }
  return cert.extension(ISSUER_V1)?.value.toString('utf8');
}
