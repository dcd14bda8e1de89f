export { parseKickstart } from './parse.js';
export { planKickstart, imageNameOf, type KickstartPlan } from './plan.js';
export { selectTargetDisk, checkDiskSize, describeDisk, systemDisks, type DiskInfo, type DiskChoice } from './disks.js';
export { runKickstart, finishInstall, type KickstartRunOptions, type KickstartResult } from './run.js';
export type { ScriptResult } from './scripts.js';
export type * from './types.js';
