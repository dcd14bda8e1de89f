/**
 * basalt's own tar codec: a streaming reader (v7, ustar, PAX, GNU) and a deterministic ustar
 * writer with PAX extensions. Written in-house because layers carry binary xattr values
 * (security.capability) that must survive byte for byte.
 */
export type { TarEntryType, TarHeader, TarEntry } from './tar-types.js';
export { readTar } from './tar-reader.js';
export { TarWriter, encodeHeader } from './tar-writer.js';
