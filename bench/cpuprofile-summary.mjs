#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by file.
//   node bench/cpuprofile-summary.mjs FILE.cpuprofile [TOP=25]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuprofile-summary.mjs FILE.cpuprofile [TOP]');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const cf = byId.get(p.samples[i]).callFrame;
  const d = p.timeDeltas[i] || 0;
  total += d;
  const where = (cf.url || '').replace(/^file:\/\/.*?\/(dist\/)/, '$1').replace(/^.*node_modules\//, 'node_modules/');
  const key = `${cf.functionName || '(anonymous)'}\t${where}${where ? `:${cf.lineNumber + 1}` : ''}`;
  self.set(key, (self.get(key) || 0) + d);
}
const ms = (us) => (us / 1000).toFixed(1).padStart(8);
console.log(`${file}: profile ${((p.endTime - p.startTime) / 1000).toFixed(0)} ms, sampled ${(total / 1000).toFixed(0)} ms (main thread)`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg || 25))) {
  const [fn, where] = k.split('\t');
  console.log(`${ms(v)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${fn}  ${where}`);
}
const byFile = new Map();
for (const [k, v] of self) {
  const where = k.split('\t')[1].replace(/:\d+$/, '') || '(native / VM)';
  byFile.set(where, (byFile.get(where) || 0) + v);
}
console.log('--- by file');
for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${ms(v)} ms  ${k}`);
