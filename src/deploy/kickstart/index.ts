export { parseKickstart } from './parse.js';
export type * from './types.js';
