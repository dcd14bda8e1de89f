/**
 * The base images a Containerfile names, so `basalt build` can hand podman the ones that
 * live only in basalt's store. Understands ARG defaults before and between stages,
 * --build-arg overrides, `FROM [--platform=...] IMAGE [AS name]`, line continuations and
 * comments; stages referring to earlier stages and `scratch` are not images.
 */
export function baseImagesOf(text: string, buildArgs: Readonly<Record<string, string>> = {}): string[] {
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  const joined = text.replace(/\\\r?\n/g, ' ');
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [instruction = '', ...rest] = line.split(/\s+/);
    const keyword = instruction.toUpperCase();
    if (keyword === 'ARG') {
      for (const decl of rest) {
        const eq = decl.indexOf('=');
        const key = eq < 0 ? decl : decl.slice(0, eq);
        const value = buildArgs[key] ?? (eq < 0 ? undefined : decl.slice(eq + 1).replace(/^"(.*)"$/, '$1'));
        if (value !== undefined) args.set(key, value);
      }
    } else if (keyword === 'FROM') {
      const words = rest.filter((w) => !w.startsWith('--'));
      const image = (words[0] ?? '').replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, k: string) => args.get(k) ?? '');
      if (words[1]?.toUpperCase() === 'AS' && words[2]) stages.add(words[2].toLowerCase());
      if (image && image !== 'scratch' && !stages.has(image.toLowerCase()) && !images.includes(image)) images.push(image);
    }
  }
  return images;
}
