/**
 * Which Debian package owns each path, from dpkg's file lists (/var/lib/dpkg/info/PKG.list
 * or PKG:ARCH.list). Paths are normalised to the tree's real locations: on merged-/usr
 * systems a list says /bin/ls while the file lives at usr/bin/ls.
 */
export const DPKG_INFO_DIR = 'var/lib/dpkg/info';

export function isDpkgList(path: string): boolean {
  return path.startsWith(`${DPKG_INFO_DIR}/`) && path.endsWith('.list') && !path.slice(DPKG_INFO_DIR.length + 1).includes('/');
}

/** `libc6:amd64` from `var/lib/dpkg/info/libc6:amd64.list`, without the architecture. */
export function packageOfList(path: string): string {
  return path.slice(DPKG_INFO_DIR.length + 1, -'.list'.length).replace(/:[^:]+$/, '');
}

/**
 * Maps each path to its owning package. `topLinks` are the tree's top-level symlinks
 * (`bin` -> `usr/bin`) used to rewrite merged-/usr paths; a path owned by several packages
 * (directories, diverted files) goes to the first by name, so the result is stable.
 */
export function ownersFromLists(lists: ReadonlyMap<string, string>, topLinks: ReadonlyMap<string, string>): Map<string, string> {
  const owners = new Map<string, string>();
  const packages = [...lists.keys()].sort();
  for (const pkg of packages) {
    for (const line of (lists.get(pkg) as string).split('\n')) {
      let path = line.replace(/^\/+/, '').replace(/\/+$/, '');
      if (path === '' || path === '.') continue;
      const slash = path.indexOf('/');
      const top = slash < 0 ? path : path.slice(0, slash);
      const link = topLinks.get(top);
      if (link !== undefined && slash >= 0) path = `${link}${path.slice(slash)}`;
      if (!owners.has(path)) owners.set(path, pkg);
    }
  }
  return owners;
}
