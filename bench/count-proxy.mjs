// A TCP proxy that counts the bytes a client receives, to measure what an update downloads at
// the wire (HTTP headers, manifests, configs, blobs, signature look-ups: everything).
//
//   node bench/count-proxy.mjs UPSTREAM_HOST:PORT COUNT_FILE
//
// Prints the port it listens on (127.0.0.1) on stdout. On SIGUSR1 it writes "DOWN UP"
// (bytes received by clients, bytes sent by them) into COUNT_FILE; SIGTERM ends it.
import { createServer, connect } from 'node:net';
import { writeFileSync, renameSync } from 'node:fs';

const [upstream, countFile] = process.argv.slice(2);
if (!upstream || !countFile) {
  console.error('usage: node bench/count-proxy.mjs UPSTREAM_HOST:PORT COUNT_FILE');
  process.exit(2);
}
const [host, port] = [upstream.slice(0, upstream.lastIndexOf(':')), Number(upstream.slice(upstream.lastIndexOf(':') + 1))];
let down = 0;
let up = 0;
const server = createServer((client) => {
  const server = connect(port, host);
  server.on('data', (b) => { down += b.length; });
  client.on('data', (b) => { up += b.length; });
  client.pipe(server);
  server.pipe(client);
  const end = () => { client.destroy(); server.destroy(); };
  client.on('error', end);
  server.on('error', end);
  client.on('close', end);
  server.on('close', end);
});
process.on('SIGUSR1', () => {
  writeFileSync(`${countFile}.tmp`, `${down} ${up}\n`);
  renameSync(`${countFile}.tmp`, countFile);
});
process.on('SIGTERM', () => process.exit(0));
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
