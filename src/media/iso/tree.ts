/**
 * An ISO's directory trees as the writer sees them: directories are always re-encoded,
 * files keep their stored records (and so their data where it lies) unless their content
 * is replaced or they are new. The same model serves a remaster (trees loaded from an
 * image) and a fresh image (trees built from nothing but added files).
 */
import { stat } from 'node:fs/promises';
import { BasaltError, ioError } from '../../oci/errors.js';
import { FLAG_DIRECTORY, encodeJoliet, parseDirectory, type DirRecord } from './format.js';
import { rockRidgeEntries } from './rockridge.js';
import type { IsoImage, TreeKind } from './reader.js';

/** New file data: bytes in memory or a local file streamed at write time. Shared by both trees. */
export type Content = { kind: 'buffer'; data: Buffer } | { kind: 'file'; path: string; size: number };

export interface FileNode {
  kind: 'file';
  name: string;
  /** The stored records (several for a multi-extent file); absent for new files. */
  records?: Buffer[];
  /** Set when the data is new: the records are pointed at where the writer puts it. */
  content?: Content;
}

export interface DirNode {
  kind: 'dir';
  name: string;
  /** The stored "." / ".." / parent-listing records, kept for their Rock Ridge fields. */
  selfRecord?: Buffer;
  parentRecord?: Buffer;
  listingRecord?: Buffer;
  children: TreeNode[];
}

export type TreeNode = FileNode | DirNode;

export interface IsoTree {
  kind: TreeKind;
  root: DirNode;
}

export function contentSize(content: Content): number {
  return content.kind === 'buffer' ? content.data.length : content.size;
}

export async function contentFromPath(path: string): Promise<Content> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new BasaltError('usage', `${path} is not a regular file`);
    return { kind: 'file', path, size: s.size };
  } catch (e) {
    throw ioError(`reading ${path}`, e);
  }
}

/** Loads a whole tree of `image` (records only; file data stays in the image). */
export async function loadTree(image: IsoImage, kind: TreeKind): Promise<IsoTree> {
  const rootRecord = image.rootRecord(kind);
  const root: DirNode = { kind: 'dir', name: '', children: [] };
  await fillDir(image, kind, root, rootRecord, 0);
  return { kind, root };
}

async function fillDir(image: IsoImage, kind: TreeKind, node: DirNode, record: DirRecord, depth: number): Promise<void> {
  if (depth > 64) throw new BasaltError('invalid', `${image.path}: directories nest deeper than 64 levels`);
  const raw = await image.readExtent(record.extent, record.size);
  const records = parseDirectory(raw);
  node.selfRecord = records[0]?.raw;
  node.parentRecord = records[1]?.raw;
  for (const entry of await image.list(record, kind)) {
    if (entry.relocated)
      throw new BasaltError('unsupported', `${image.path} uses Rock Ridge directory relocation (directories deeper than 8 levels), which basalt does not rewrite`);
    const parts = (entry as { parts?: DirRecord[] }).parts ?? [entry.record];
    if (entry.isDirectory) {
      const child: DirNode = { kind: 'dir', name: entry.name, listingRecord: entry.record.raw, children: [] };
      await fillDir(image, kind, child, entry.record, depth + 1);
      node.children.push(child);
    } else node.children.push({ kind: 'file', name: entry.name, records: parts.map((p) => p.raw) });
  }
}

export function findNode(tree: IsoTree, path: string): TreeNode | undefined {
  let node: TreeNode = tree.root;
  for (const part of splitPath(path)) {
    if (node.kind !== 'dir') return undefined;
    const dir: DirNode = node;
    const next: TreeNode | undefined = dir.children.find((c) => c.name === part) ?? dir.children.find((c) => c.name.toLowerCase() === part.toLowerCase());
    if (!next) return undefined;
    node = next;
  }
  return node;
}

function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/** Puts `content` at `path`, replacing a file there or creating it and its parent directories. */
export function putFile(tree: IsoTree, path: string, content: Content): void {
  const parts = splitPath(path);
  const name = parts.pop();
  if (!name) throw new BasaltError('usage', `"${path}" does not name a file inside the ISO`);
  let dir = tree.root;
  for (const part of parts) dir = ensureDir(dir, part, path);
  const existing = dir.children.find((c) => c.name === name);
  if (existing?.kind === 'dir') throw new BasaltError('usage', `${path} is a directory in the ISO; cannot replace it with a file`);
  if (existing) existing.content = content;
  else insertSorted(dir, { kind: 'file', name, content });
}

function ensureDir(dir: DirNode, name: string, path: string): DirNode {
  const existing = dir.children.find((c) => c.name === name);
  if (existing?.kind === 'file') throw new BasaltError('usage', `${name} in ${path} is a file in the ISO, not a directory`);
  if (existing) return existing;
  const created: DirNode = { kind: 'dir', name, children: [] };
  insertSorted(dir, created);
  return created;
}

function insertSorted(dir: DirNode, node: TreeNode): void {
  const at = dir.children.findIndex((c) => c.name.toUpperCase() > node.name.toUpperCase());
  if (at < 0) dir.children.push(node);
  else dir.children.splice(at, 0, node);
}

/** An ISO 9660 level-2 style identifier for a new entry: upper case, d-characters, unique in its directory. */
export function primaryIdentifier(name: string, isDir: boolean, taken: Set<string>): Buffer {
  let base = name.toUpperCase().replace(/[^A-Z0-9_.]/g, '_');
  if (isDir) base = base.replace(/\./g, '_');
  else {
    const dot = base.lastIndexOf('.');
    base = dot < 0 ? `${base}.` : `${base.slice(0, dot).replace(/\./g, '_')}${base.slice(dot)}`;
  }
  base = base.slice(0, 30);
  let candidate = base;
  for (let n = 1; taken.has(candidate); n++) candidate = `${base.slice(0, 26)}~${n}`;
  taken.add(candidate);
  return Buffer.from(isDir ? candidate : `${candidate};1`, 'latin1');
}

export function jolietIdentifier(name: string, isDir: boolean): Buffer {
  return encodeJoliet(isDir ? name.slice(0, 64) : `${name.slice(0, 62)};1`);
}

/** The System Use bytes a new entry carries in a Rock Ridge primary tree. */
export function newSystemUse(kind: TreeKind, rockRidge: boolean, pxLength: number, name: string, isDir: boolean, inode: number): Buffer | undefined {
  if (kind !== 'primary' || !rockRidge) return undefined;
  return rockRidgeEntries(name, isDir ? 0o040555 : 0o100444, pxLength, inode);
}

export function isDirRecord(raw: Buffer): boolean {
  return ((raw[25] ?? 0) & FLAG_DIRECTORY) !== 0;
}
