import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from '../harness/cli.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { GREETING, actool, basaltAsync, basaltAsyncOk, gpgKey, helloLayout, manifestOf, runAsync } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Starts `basalt aci serve` and resolves with its URL once it listens. */
function startServe(dir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'aci', 'serve', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`aci serve did not start: ${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = / on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string });
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => reject(new Error(`aci serve exited ${code}: ${out}`)));
  });
}

test('seed workflow: static hello → build → validate → sign → trust → serve → fetch by name → export to OCI → podman run', async () => {
  requireTool('podman');
  const dir = await tempDir('aci-seed');
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const actoolBin = await actool();
  const layout = await helloLayout(join(dir, 'layout'), manifestOf('localhost/hello', { annotations: [{ name: 'created', value: '2024-01-02T03:04:05Z' }] }));
  const served = join(dir, 'served');
  await run('mkdir', ['-p', served]);
  const aci = join(served, 'hello-1.0.0-linux-amd64.aci');
  await basaltAsyncOk(['aci', 'build', layout, aci], { SOURCE_DATE_EPOCH: '1700000000' });
  await basaltAsyncOk(['aci', 'validate', aci]);
  const peer = await runAsync(actoolBin, ['validate', aci]);
  assert.equal(peer.status, 0, peer.out);

  const key = await gpgKey(dir, 'Hello Publisher <hello@example.com>');
  await basaltAsyncOk(['aci', 'sign', aci, '--key', key.priv]);
  // gpg itself verifies basalt's signature.
  run('gpg', ['--batch', '--no-default-keyring', '--keyring', join(dir, 'verify.kbx'), '--import', key.pub]);
  run('gpg', ['--batch', '--no-default-keyring', '--keyring', join(dir, 'verify.kbx'), '--verify', `${aci}.asc`, aci]);
  const trust = join(dir, 'trust');
  await basaltAsyncOk(['aci', 'trust', '--trust-dir', trust, '--prefix', 'localhost/hello', key.pub]);

  await copyFile(key.pub, join(served, 'pubkeys.gpg'));
  const server = await startServe(served);
  cleanups.push(() => void server.child.kill('SIGTERM'));
  const port = new URL(server.url).port;
  const discovered = await basaltAsyncOk(['aci', 'discover', '--insecure', '--port', port, 'localhost/hello:1.0.0']);
  assert.match(discovered, new RegExp(`ACI: http://localhost:${port}/_aci/localhost/hello/1.0.0/linux/amd64.aci`));
  // actool discovers the same endpoints and keys from basalt's server.
  const peerDiscover = await runAsync(actoolBin, ['discover', '--insecure', `--port=${port}`, 'localhost/hello:1.0.0']);
  assert.equal(peerDiscover.status, 0, peerDiscover.out);
  const lines = (t: string): string[] => t.split('\n').filter((l) => l.startsWith('ACI:') || l.startsWith('PublicKeys:'));
  assert.deepEqual(lines(discovered), lines(peerDiscover.out));
  assert.deepEqual(lines(discovered)[1], `PublicKeys: http://localhost:${port}/pubkeys.gpg`);

  const store = join(dir, 'store');
  const fetchArgs = ['aci', 'fetch', '--port', port, '--insecure-options', 'http', '--trust-dir', trust, '--system-trust-dir', join(dir, 'none'), '--store', store, '--json', 'localhost/hello:1.0.0'];
  const fetched = JSON.parse(await basaltAsyncOk(fetchArgs)) as { signedBy: string; stored: { imageId: string } };
  assert.equal(fetched.signedBy, key.fingerprint);
  // A version the server does not have is not found.
  const missing = await basaltAsync(fetchArgs.slice(0, -1).concat('localhost/hello:9.9.9'));
  assert.equal(missing.status, 3, missing.stderr);

  // podman reads docker archives; its oci: parser trips on upper case in temp paths.
  const archive = join(dir, 'hello.tar');
  const imageName = `localhost/basalt-aci-seed/hello:${process.pid}`;
  await basaltAsyncOk(['aci', 'export', '--to', 'oci', '--store', store, 'localhost/hello:1.0.0', `docker-archive:${archive}:${imageName}`]);
  run('podman', ['load', '-q', '-i', archive]);
  const imageId = imageName;
  cleanups.push(() => void runAsync('podman', ['rmi', '-f', imageName]));
  const out = run('podman', ['run', '--rm', imageId]);
  assert.equal(out.trim(), GREETING);
  const config = JSON.parse(run('podman', ['image', 'inspect', imageId])) as { Config: { Entrypoint: string[]; Labels: Record<string, string> } }[];
  assert.deepEqual(config[0]?.Config.Entrypoint, ['/bin/hello']);
  assert.equal(config[0]?.Config.Labels['appc.io/label/version'], '1.0.0');
});
