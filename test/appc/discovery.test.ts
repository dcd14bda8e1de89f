import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { extractMeta, parseAppString, renderTemplate } from '../../src/appc/discovery.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { actool, basaltAsync as basalt, basaltAsyncOk as basaltOk, runAsync, staticServer } from './helpers.js';

const runActool = (bin: string, args: string[]): Promise<{ status: number; out: string }> => runAsync(bin, args);

let actoolBin: string;
let site: Awaited<ReturnType<typeof staticServer>>;

const page = (metas: string[]): string => `<!DOCTYPE html><html><head>\n${metas.join('\n')}\n<title>x</title></head><body>hi</body></html>`;

before(async () => {
  actoolBin = await actool();
  site = await staticServer({});
  const base = `http://localhost:${site.port}`;
  // localhost/org has the page; localhost/org/app and its deeper names are found by walking up.
  site.server.removeAllListeners('request');
  const pages: Record<string, string> = {
    '/org': page([
      `<meta name="ac-discovery" content="localhost/org ${base}/files/{name}-{version}-{os}-{arch}.{ext}">`,
      `<meta name="ac-discovery-pubkeys" content="localhost/org ${base}/pubkeys.gpg">`,
      `<meta name="ac-discovery" content="other.example/x ${base}/wrong/{name}.{ext}">`,
    ]),
    '/chan': page([
      `<meta name="ac-discovery" content="localhost/chan ${base}/chan/{name}-{channel}.{ext}">`,
      `<meta name="ac-discovery-pubkeys" content="localhost/chan ${base}/pubkeys.gpg">`,
    ]),
    '/mismatch': page([`<meta name="ac-discovery" content="someone.else/app ${base}/x.{ext}">`, `<meta name="ac-discovery-pubkeys" content="someone.else ${base}/k">`]),
  };
  site.server.on('request', (req, res) => {
    site.requests.push(req.url ?? '');
    const u = new URL(req.url ?? '/', 'http://x');
    const body = u.searchParams.get('ac-discovery') === '1' ? pages[u.pathname] : undefined;
    if (body === undefined) return void res.writeHead(404).end('no');
    res.writeHead(200, { 'content-type': 'text/html' }).end(body);
  });
});
after(async () => site.close());

test('app strings, meta tags and templates parse as appc discovery does', () => {
  assert.deepEqual(parseAppString('example.com/app:1.0.0,os=linux'), { name: 'example.com/app', labels: { version: '1.0.0', os: 'linux' } });
  assert.deepEqual(parseAppString('example.com/app'), { name: 'example.com/app', labels: {} });
  assert.throws(() => parseAppString('example.com/app,os=linux:1.0'), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => parseAppString('example.com/app:1:2'), (e) => isBasaltError(e, 'usage'));
  assert.throws(() => parseAppString('Example.com/app'), (e) => isBasaltError(e, 'usage'));
  const metas = extractMeta(`<meta name="ac-discovery" content="example.com https://example.com/{name}.{ext}"><META content='example.com/k https://k' name='ac-discovery-pubkeys'/><meta name="other" content="a b"><meta name="ac-discovery" content="nospace">`);
  assert.deepEqual(metas, [
    { name: 'ac-discovery', prefix: 'example.com', uri: 'https://example.com/{name}.{ext}' },
    { name: 'ac-discovery-pubkeys', prefix: 'example.com/k', uri: 'https://k' },
  ]);
  assert.equal(renderTemplate('https://x/{name}-{version}.{ext}', { name: 'a/b', version: '1', ext: 'aci' }), 'https://x/a/b-1.aci');
  assert.equal(renderTemplate('https://x/{name}-{channel}.{ext}', { name: 'a', ext: 'aci' }), undefined);
});

/** The "ACI:" and "PublicKeys:" lines of a discover run (actool also prints its failed walk steps). */
function endpoints(out: string): string[] {
  return out.split('\n').filter((l) => l.startsWith('ACI:') || l.startsWith('PublicKeys:'));
}

test('discovery walks up the name, fills templates from labels with os/arch defaults, and agrees with actool', async () => {
  const port = String(site.port);
  const name = 'localhost/org/app/deep:2.1';
  const ours = await basaltOk(['aci', 'discover', '--insecure', '--port', port, name]);
  const theirs = await runActool(actoolBin, ['discover', '--insecure', `--port=${port}`, name]);
  assert.equal(theirs.status, 0, theirs.out);
  assert.deepEqual(endpoints(ours), endpoints(theirs.out));
  assert.deepEqual(endpoints(ours), [
    `ACI: http://localhost:${port}/files/localhost/org/app/deep-2.1-linux-amd64.aci, ASC: http://localhost:${port}/files/localhost/org/app/deep-2.1-linux-amd64.aci.asc`,
    `PublicKeys: http://localhost:${port}/pubkeys.gpg`,
  ]);
  // The walk asked for each prefix, longest first, and stopped at the first page with endpoints.
  const asked = site.requests.filter((r) => r.endsWith('?ac-discovery=1'));
  assert.deepEqual(asked.slice(-3), ['/org/app/deep?ac-discovery=1', '/org/app?ac-discovery=1', '/org?ac-discovery=1']);
  // JSON has actool's shape.
  const json = JSON.parse(await basaltOk(['aci', 'discover', '--insecure', '--json', '--port', port, 'localhost/org/app,version=3,os=linux,arch=aarch64'])) as { ACIEndpoints: { ACI: string }[] };
  assert.equal(json.ACIEndpoints[0]?.ACI, `http://localhost:${port}/files/localhost/org/app-3-linux-aarch64.aci`);
  const theirOut = (await runActool(actoolBin, ['discover', '--insecure', '--json', `--port=${port}`, 'localhost/org/app,version=3,os=linux,arch=aarch64'])).out;
  // actool prints its failed walk steps before the JSON document.
  const theirJson = JSON.parse(theirOut.slice(theirOut.indexOf('{'))) as unknown;
  assert.deepEqual(json, theirJson);
});

test('discovery tries https first and uses http only when insecure', async () => {
  const r = await basalt(['aci', 'discover', '--port', String(site.port), 'localhost/org/app']);
  assert.equal(r.status, 3);
  assert.match(r.stderr, /found no ACI endpoint/);
  assert.match(r.stderr, /--insecure/);
  assert.notEqual((await runActool(actoolBin, ['discover', `--port=${site.port}`, 'localhost/org/app'])).status, 0);
});

test('a page whose templates no label fills, or whose prefixes do not match, yields nothing; a label fills it', async () => {
  const port = String(site.port);
  const unfilled = await basalt(['aci', 'discover', '--insecure', '--port', port, 'localhost/chan/app']);
  assert.equal(unfilled.status, 3);
  assert.match(unfilled.stderr, /none filled by the labels/);
  assert.notEqual((await runActool(actoolBin, ['discover', '--insecure', `--port=${port}`, 'localhost/chan/app'])).status, 0);
  const filled = await basaltOk(['aci', 'discover', '--insecure', '--port', port, 'localhost/chan/app,channel=beta']);
  assert.match(filled, new RegExp(`ACI: http://localhost:${port}/chan/localhost/chan/app-beta.aci`));
  const mismatch = await basalt(['aci', 'discover', '--insecure', '--port', port, 'localhost/mismatch/app']);
  assert.equal(mismatch.status, 3);
  assert.match(mismatch.stderr, /no ac-discovery meta tag for this name/);
  assert.notEqual((await runActool(actoolBin, ['discover', '--insecure', `--port=${port}`, 'localhost/mismatch/app'])).status, 0);
});
