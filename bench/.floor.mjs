import { Agent, get } from 'node:http';
import { createHash } from 'node:crypto';
import { open, mkdir, rm } from 'node:fs/promises';
const base = 'http://127.0.0.1:5099/v2/bench/debian';
const mode = process.argv[2] || 'plain';
// node:http, as basalt's registry client since undici was dropped (start-up cost).
const agent = new Agent({ keepAlive: true, maxSockets: 16 });
const request = (url, headers = {}) => new Promise((resolve, reject) => get(url, { agent, headers, highWaterMark: 1 << 20 }, resolve).on('error', reject));
const text = async (res) => { let s = ''; for await (const c of res) s += c; return s; };
const m = JSON.parse(await text(await request(`${base}/manifests/src`, { accept: 'application/vnd.oci.image.manifest.v1+json' })));
await rm('/var/tmp/floor', { recursive: true, force: true }); await mkdir('/var/tmp/floor');
await Promise.all(m.layers.map(async (l) => {
  const res = await request(`${base}/blobs/${l.digest}`);
  const fh = await open(`/var/tmp/floor/${l.digest.slice(7)}`, 'w');
  const h = createHash('sha256');
  if (mode === 'batch') {
    let buf = Buffer.allocUnsafe(1 << 20), used = 0;
    for await (const c of res) {
      h.update(c);
      if (used + c.length > buf.length) { await fh.write(buf, 0, used); buf = Buffer.allocUnsafe(1 << 20); used = 0; }
      if (c.length >= buf.length) { await fh.write(c); continue; }
      c.copy(buf, used); used += c.length;
    }
    if (used) await fh.write(buf, 0, used);
  } else {
    for await (const c of res) { h.update(c); await fh.write(c); }
  }
  await fh.close();
  if ('sha256:' + h.digest('hex') !== l.digest) throw new Error('bad');
}));
