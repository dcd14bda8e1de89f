/**
 * yaml is loaded on first use (the bundle splits it into its own chunk, so commands that never
 * read or write YAML do not parse it). Bundled, a CommonJS package reaches import() as the
 * default export; compiled by tsc and run by node, its names are exported directly.
 */
type YamlModule = typeof import('yaml');

let loading: Promise<YamlModule> | undefined;

export function loadYaml(): Promise<YamlModule> {
  loading ??= import('yaml').then((m: YamlModule & { default?: YamlModule }) => (typeof m.parse === 'function' ? m : (m.default as YamlModule)));
  return loading;
}
