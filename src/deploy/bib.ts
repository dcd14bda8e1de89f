import { readFile, rename, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { parseBibConfig, rootMinSize, type BibConfig } from '../media/config-toml.js';
import { convertDisk } from '../media/convert.js';
import { installToDiskImage, type InstallToDiskOptions, type InstallToDiskResult } from './to-disk.js';

export type DiskType = 'raw' | 'qcow2' | 'vmdk';

export interface BuildDiskOptions extends Omit<InstallToDiskOptions, 'users' | 'rootSize'> {
  type: DiskType;
  /** bootc-image-builder's config.toml, as a path. */
  configFile?: string;
  /** Root filesystem size in bytes; at least config.toml's minsize for `/`. */
  size?: number;
}

export interface BuildDiskResult extends InstallToDiskResult {
  /** The file written in the output directory. */
  output: string;
  type: DiskType;
}

const FILE_NAMES: Record<DiskType, string> = { raw: 'disk.raw', qcow2: 'disk.qcow2', vmdk: 'disk.vmdk' };

export async function loadBibConfig(file: string): Promise<BibConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw ioError(`config file ${file}`, e);
  }
  return parseBibConfig(text, file);
}

/**
 * bootc-image-builder's job: an image into a bootable disk of the given type in `outDir`
 * (`disk.raw`, `disk.qcow2` or `disk.vmdk`, as bib names them), customised by config.toml.
 * Nothing is left half-written in `outDir`: the disk is built in a work directory there and
 * renamed into place at the end.
 */
export async function buildDisk(imageName: string, outDir: string, options: BuildDiskOptions): Promise<BuildDiskResult> {
  const config = options.configFile ? await loadBibConfig(options.configFile) : undefined;
  const minSize = config ? rootMinSize(config) : undefined;
  if (options.size !== undefined && minSize !== undefined && options.size < minSize)
    throw new BasaltError('usage', `--size ${options.size} is smaller than the minsize ${minSize} that ${options.configFile} asks for /`);
  const rootSize = options.size ?? minSize;
  const kargs = [...(options.kargs ?? []), ...(config?.kernelAppend ? config.kernelAppend.split(/\s+/).filter(Boolean) : [])];
  await mkdir(outDir, { recursive: true });
  const output = join(outDir, FILE_NAMES[options.type]);
  const work = join(outDir, `.basalt-disk-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work);
  try {
    const raw = join(work, 'disk.raw');
    const { configFile: _c, size: _s, type, ...install } = options;
    const result = await installToDiskImage(raw, imageName, {
      ...install,
      kargs,
      workDir: work,
      ...(config?.users.length ? { users: config.users } : {}),
      ...(rootSize !== undefined ? { rootSize } : {}),
    });
    if (type === 'raw') await rename(raw, output);
    else {
      await convertDisk(raw, type, join(work, FILE_NAMES[type]));
      await rename(join(work, FILE_NAMES[type]), output);
    }
    return { ...result, output, type };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
