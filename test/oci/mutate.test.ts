import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mutateConfig, appendLayers, emptyConfig } from '../../src/oci/mutate.js';
import { serializeImage, type Image, type Layer } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { digestOf } from '../../src/oci/digest.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { Readable } from 'node:stream';

const base: Image = {
  manifestType: MediaType.OciManifest,
  config: { ...emptyConfig({ os: 'linux', architecture: 'amd64' }), config: { Env: ['PATH=/usr/bin', 'A=1'], Labels: { keep: 'yes', drop: 'no' } } },
  layers: [],
};

test('mutateConfig is pure and applies labels, env, entrypoint, cmd, user, workdir, annotations', () => {
  const before = JSON.stringify(base);
  const out = mutateConfig(base, { labels: { new: 'v', drop: null }, env: ['A=2', 'B=3', 'PATH-'], entrypoint: ['/bin/app'], cmd: null, user: '1000:1000', workdir: '/srv', annotations: { 'org.opencontainers.image.title': 't' } });
  assert.equal(JSON.stringify(base), before, 'input image untouched');
  assert.deepEqual(out.config.config?.Labels, { keep: 'yes', new: 'v' });
  assert.deepEqual(out.config.config?.Env, ['A=2', 'B=3']);
  assert.deepEqual(out.config.config?.Entrypoint, ['/bin/app']);
  assert.equal(out.config.config?.Cmd, null);
  assert.equal(out.config.config?.User, '1000:1000');
  assert.equal(out.config.config?.WorkingDir, '/srv');
  const s = serializeImage(out);
  const manifest = JSON.parse(s.manifest.bytes.toString()) as { annotations: Record<string, string>; config: { digest: string } };
  assert.equal(manifest.annotations['org.opencontainers.image.title'], 't');
  assert.equal(manifest.config.digest, digestOf(s.configBytes));
});

test('annotations on a Docker v2s2 image are refused with a way out', () => {
  assert.throws(() => mutateConfig({ ...base, manifestType: MediaType.DockerManifest }, { annotations: { a: 'b' } }), (e) => isBasaltError(e, 'usage') && /--format oci/.test(e.hint ?? ''));
});

test('appendLayers extends diff_ids, history and the manifest in order', () => {
  const mk = (n: string): Layer => ({ descriptor: { mediaType: MediaType.OciLayerGzip, digest: digestOf(n), size: n.length }, diffId: digestOf(`u${n}`), open: async () => Readable.from([]) });
  const out = appendLayers(appendLayers(base, [mk('a')], { created_by: 'one' }), [mk('b')], { created_by: 'two' });
  assert.deepEqual(out.config.rootfs.diff_ids, [digestOf('ua'), digestOf('ub')]);
  assert.deepEqual(out.config.history?.map((h) => h.created_by), ['one', 'two']);
  const m = JSON.parse(serializeImage(out).manifest.bytes.toString()) as { layers: { digest: string }[] };
  assert.deepEqual(m.layers.map((l) => l.digest), [digestOf('a'), digestOf('b')]);
});
