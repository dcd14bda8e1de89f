// Times the phases of an update on a real ostree sysroot directory, through basalt's library
// (the same functions `basalt upgrade` calls): layer import, merge, deploy. Used by update.sh.
//
//   node bench/update-phases.mjs SYSROOT IMAGE...
//
// For each IMAGE (any basalt image name; the local store by default), in order: reads it,
// imports it into SYSROOT's repository (only layers not there yet are imported), merges its
// layers into one commit, deploys that commit as the new default. Prints one JSON line per
// image: {image, layers, importedLayers, importedBytes (compressed sizes of the layers
// imported), importS, mergeS, deployS, commit}.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src');
const { openSource } = await import(join(dist, 'oci/transports/index.js'));
const { readImage } = await import(join(dist, 'oci/image.js'));
const { importImage, imageRef } = await import(join(dist, 'deploy/import.js'));
const { deployCommit } = await import(join(dist, 'deploy/redeploy.js'));
const { repoOf } = await import(join(dist, 'deploy/sysroot.js'));
const { formatOrigin, imageSpecOf } = await import(join(dist, 'deploy/origin.js'));

const [sysroot, ...images] = process.argv.slice(2);
if (!sysroot || images.length === 0) {
  console.error('usage: node bench/update-phases.mjs SYSROOT IMAGE...');
  process.exit(2);
}
const repo = repoOf(sysroot);
for (const name of images) {
  const source = await openSource(name);
  try {
    const image = await readImage(source);
    const t0 = performance.now();
    let tMerge = NaN;
    let importedBytes = 0;
    const result = await importImage(repo, image, {
      imageName: name,
      ref: imageRef(name),
      onProgress: (e) => {
        if (e.type === 'layer' && e.state === 'imported') importedBytes += e.size;
        if (e.type === 'merge') tMerge = performance.now();
      },
    });
    const t1 = performance.now();
    const deployed = await deployCommit(sysroot, result.commit, { stateroot: 'default', kargs: ['rw'], origin: formatOrigin(imageSpecOf(name), result.ref) });
    const t2 = performance.now();
    const s = (ms) => Math.round(ms) / 1000;
    console.log(JSON.stringify({
      image: name,
      layers: result.layers.length,
      importedLayers: result.imported,
      importedBytes,
      importS: s((Number.isNaN(tMerge) ? t1 : tMerge) - t0),
      mergeS: Number.isNaN(tMerge) ? 0 : s(t1 - tMerge),
      deployS: s(t2 - t1),
      commit: result.commit,
      deployment: deployed.id,
    }));
  } finally {
    await source.close();
  }
}
