import type { TransportOptions } from '../transport.js';
import { login, logout } from './login.js';
import type { RegistryOptions } from './options.js';
import { registryClientFor } from './transport.js';

/**
 * Registry operations that are not a copy, in the shape the CLI and src/oci/catalog.ts call:
 * `reference` is what follows `docker://`.
 */

/** Every tag of the repository the reference names (its tag or digest is ignored). */
export async function listRepositoryTags(reference: string, options: TransportOptions | RegistryOptions = {}): Promise<string[]> {
  const { client, reference: ref } = await registryClientFor(reference, options);
  return client.listTags(ref.repository);
}

/** Deletes the manifest a tag or digest names (a tag is resolved to its digest first). */
export async function deleteRegistryImage(reference: string, options: TransportOptions | RegistryOptions = {}): Promise<void> {
  const { client, reference: ref } = await registryClientFor(reference, options);
  await client.deleteManifest(ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref);
}

/** Verifies credentials and stores them; returns the auth file written. */
export async function loginRegistry(registry: string, username: string, password: string, options: TransportOptions | RegistryOptions = {}): Promise<string> {
  return login(registry, username, password, options);
}

/** Removes stored credentials; returns the auth file edited. */
export async function logoutRegistry(registry: string | { all: true }, options: TransportOptions | RegistryOptions = {}): Promise<string> {
  return logout(registry, options);
}
