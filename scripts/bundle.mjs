// Bundles the CLI into one ES module for start-up speed (one file to parse instead of ~60
// modules) and for the device, which runs Debian's Node 18. The zstd binding is native and
// stays an external package. Libraries only some commands need (openpgp.js, yaml, the
// sigstore libraries) are reached through dynamic import() and split into chunks under
// dist/chunks, so a copy or status does not parse them: that halves the start-up cost.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

await rm('dist/chunks', { recursive: true, force: true });

await build({
  entryPoints: { basalt: 'src/cli/main.ts' },
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  external: ['zstd-napi'],
  sourcemap: 'linked',
  // CommonJS dependencies call require() for Node built-ins; give the ES module one.
  banner: { js: "import { createRequire as __basaltRequire } from 'node:module'; const require = __basaltRequire(import.meta.url);" },
  logLevel: 'warning',
});
