/**
 * Progress of long builds. The library reports phases through a callback; the CLI decides
 * how to show them (phase lines on stderr), so nothing in src/build prints.
 */
export type BuildPhase = 'bootstrap' | 'extract' | 'configure' | 'initramfs' | 'layout' | 'pack' | 'store' | 'podman-build' | 'lint' | 'push';

export type BuildEvent =
  | { type: 'phase-start'; phase: BuildPhase; detail?: string }
  | { type: 'phase-done'; phase: BuildPhase; seconds: number; detail?: string }
  /** A cache hit or miss, naming the cached file. */
  | { type: 'cache'; hit: boolean; path: string }
  /** One line of a tool's output worth showing (the last lines of podman's build, mmdebstrap's I: lines). */
  | { type: 'log'; line: string };

export type BuildEventSink = (event: BuildEvent) => void;

/** Runs `fn` between a phase-start and a phase-done event carrying its duration. */
export async function phase<T>(sink: BuildEventSink | undefined, name: BuildPhase, fn: () => Promise<T>, detail?: (result: T) => string | undefined): Promise<T> {
  sink?.({ type: 'phase-start', phase: name });
  const started = process.hrtime.bigint();
  const result = await fn();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const d = detail?.(result);
  sink?.({ type: 'phase-done', phase: name, seconds, ...(d !== undefined ? { detail: d } : {}) });
  return result;
}
