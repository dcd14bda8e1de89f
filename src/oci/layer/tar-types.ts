import type { Readable } from 'node:stream';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One tar entry's metadata, independent of how it is encoded (ustar, PAX, GNU). */
export interface TarHeader {
  /** As stored, except that trailing slashes are removed (the type says it is a directory). */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky; no file-type bits. */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Data size in bytes; 0 for everything but files. */
  size: number;
  /** Seconds since the epoch; may be fractional (PAX) or negative. */
  mtime: number;
  /** Symlink target, or for hardlinks the path of the entry linked to. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes; values are raw bytes (a security.capability holds 0x00 and 0xff). */
  xattrs?: Map<string, Buffer>;
}

export interface TarEntry extends TarHeader {
  /**
   * The entry's data. Consume it before asking for the next entry; what is left unread is
   * skipped (and the stream destroyed) when the next entry is requested.
   */
  body: Readable;
  /** Byte offset of the data within the uncompressed tar stream. */
  dataOffset: number;
}
