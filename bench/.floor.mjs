import { request } from 'undici';
import { createHash } from 'node:crypto';
import { open, mkdir, rm } from 'node:fs/promises';
const base = 'http://127.0.0.1:5099/v2/bench/debian';
const mode = process.argv[2] || 'plain';
const m = await (await request(`${base}/manifests/src`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).body.json();
await rm('/var/tmp/floor', { recursive: true, force: true }); await mkdir('/var/tmp/floor');
await Promise.all(m.layers.map(async (l) => {
  const res = await request(`${base}/blobs/${l.digest}`, { maxRedirections: 5 });
  const fh = await open(`/var/tmp/floor/${l.digest.slice(7)}`, 'w');
  const h = createHash('sha256');
  if (mode === 'batch') {
    let buf = Buffer.allocUnsafe(1 << 20), used = 0;
    for await (const c of res.body) {
      h.update(c);
      if (used + c.length > buf.length) { await fh.write(buf, 0, used); buf = Buffer.allocUnsafe(1 << 20); used = 0; }
      if (c.length >= buf.length) { await fh.write(c); continue; }
      c.copy(buf, used); used += c.length;
    }
    if (used) await fh.write(buf, 0, used);
  } else {
    for await (const c of res.body) { h.update(c); await fh.write(c); }
  }
  await fh.close();
  if ('sha256:' + h.digest('hex') !== l.digest) throw new Error('bad');
}));
