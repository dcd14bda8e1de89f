import { BasaltError } from './errors.js';
import { parseImageName } from './transports/index.js';
import { parseLayoutReference, listLayoutRefs, removeLayoutRef, gcLayout } from './transports/oci-layout.js';
import { defaultStoreRoot, listStoreImages, removeStoreImage, type StoreImage } from './transports/store.js';
import { listRepositoryTags, deleteRegistryImage } from './registry/catalog.js';
import type { TransportOptions } from './transport.js';

/**
 * Name-level operations that are not a copy: listing tags and deleting images, for every
 * transport that has names.
 */
export async function listTags(name: string, options: TransportOptions = {}): Promise<string[]> {
  const { transport, reference } = parseImageName(name);
  switch (transport.name) {
    case 'docker':
      return listRepositoryTags(reference, options);
    case 'oci':
      return (await listLayoutRefs(parseLayoutReference(reference).dir)).map((r) => r.ref);
    case 'store':
      return (await listStoreImages(options.storeRoot ?? defaultStoreRoot())).map((i) => i.name);
    default:
      throw new BasaltError('unsupported', `list-tags works on docker://, oci: and the local store, not ${transport.name}:`);
  }
}

export async function deleteImage(name: string, options: TransportOptions = {}): Promise<void> {
  const { transport, reference } = parseImageName(name);
  switch (transport.name) {
    case 'docker':
      return deleteRegistryImage(reference, options);
    case 'oci': {
      const ref = parseLayoutReference(reference);
      if (!ref.ref) throw new BasaltError('usage', `delete ${name}: name the image to delete as oci:DIR:REF`);
      await removeLayoutRef(ref.dir, ref.ref);
      await gcLayout(ref.dir);
      return;
    }
    case 'store':
      await removeImage(reference, options);
      return;
    default:
      throw new BasaltError('unsupported', `delete works on docker://, oci: and the local store, not ${transport.name}:`);
  }
}

export async function listImages(options: TransportOptions = {}): Promise<StoreImage[]> {
  return listStoreImages(options.storeRoot ?? defaultStoreRoot());
}

/** Removes a name from the store and collects blobs no other name uses. */
export async function removeImage(name: string, options: TransportOptions = {}): Promise<void> {
  const root = options.storeRoot ?? defaultStoreRoot();
  await removeStoreImage(root, name);
  await gcLayout(root);
}
