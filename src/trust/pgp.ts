import { BasaltError } from '../oci/errors.js';

// Placeholder for the OpenPGP helper's module; replaced whole at merge.

export interface PgpSigner { keyId: string; gnupgHome?: string; passphrase?: string }
export interface VerifiedSimpleSignature { payload: Buffer; signerFingerprint: string }

export async function createSimpleSignature(_payload: Buffer, _signer: PgpSigner): Promise<Buffer> {
  throw new BasaltError('unsupported', 'OpenPGP simple signing is not merged yet');
}

export async function verifySimpleSignature(_signature: Buffer, _keyringPaths: string[], _keyData?: Buffer[]): Promise<VerifiedSimpleSignature> {
  throw new BasaltError('unsupported', 'OpenPGP simple signing is not merged yet');
}
