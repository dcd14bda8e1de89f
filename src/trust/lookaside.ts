import { BasaltError } from '../oci/errors.js';

// Placeholder for the OpenPGP helper's module; replaced whole at merge.

export async function readLookasideSignatures(_baseUrl: string, _repositoryPath: string, _manifestDigest: string): Promise<Buffer[]> {
  throw new BasaltError('unsupported', 'OpenPGP simple signing is not merged yet');
}

export async function writeLookasideSignature(_baseUrl: string, _repositoryPath: string, _manifestDigest: string, _signature: Buffer): Promise<string> {
  throw new BasaltError('unsupported', 'OpenPGP simple signing is not merged yet');
}
