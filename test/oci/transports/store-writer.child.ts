/**
 * Child process for the store's concurrent-writer test: writes `count` distinct images named
 * `PREFIX-i` into the store at ROOT. Does nothing unless given its arguments, so a test
 * runner that picks up every file under test/ runs it harmlessly.
 */
import { storeTransport } from '../../../src/oci/transports/store.js';
import { buildImage, copyLocal } from './helpers.js';

const [root, prefix, countArg] = process.argv.slice(2);
if (root && prefix && countArg) {
  for (let i = 0; i < Number(countArg); i++) {
    const img = await buildImage([{ [`etc/${prefix}`]: `${prefix} ${i}\n` }]);
    await copyLocal(img.source, await storeTransport.openDestination(`${prefix}-${i}`, { storeRoot: root }));
  }
}
