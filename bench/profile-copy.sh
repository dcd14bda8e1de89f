#!/usr/bin/env bash
# Profiles one basalt copy per scenario (the image-copy benchmark's pull and push) with
# `node --cpu-prof` and prints where the main thread's time goes. Profiles are kept in
# PROFILE_DIR (default /var/tmp/basalt-bench-profile) for Chrome DevTools / speedscope.
#   BASALT_JS   the CLI entry to profile (default <repo>/dist/src/cli/main.js)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASALT_JS="${BASALT_JS:-$ROOT/dist/src/cli/main.js}"
FIXTURE_IMAGE="${FIXTURE_IMAGE:-localhost/basalt-bench/debian:fixture}"
OUT="${PROFILE_DIR:-/var/tmp/basalt-bench-profile}"
podman image exists "$FIXTURE_IMAGE" || { echo "run bench/fixture-debian.sh first" >&2; exit 2; }
# shellcheck source=bench/registry.sh
source "$ROOT/bench/registry.sh"
registry_start
rm -rf "$OUT"; mkdir -p "$OUT"
SRC="docker://$REGISTRY_HOST/bench/debian:src"
skopeo copy -q --format oci --dest-tls-verify=false "containers-storage:$FIXTURE_IMAGE" "$SRC" 2> >(grep -v graphdriver >&2) >/dev/null
sync
/usr/bin/time -f 'pull: %e s wall, %U s user, %S s sys, %M KB peak RSS' \
  node --cpu-prof --cpu-prof-dir="$OUT/pull" "$BASALT_JS" image copy -q --src-tls-verify=false "$SRC" "oci:$OUT/layout:bench"
sync
/usr/bin/time -f 'push: %e s wall, %U s user, %S s sys, %M KB peak RSS' \
  node --cpu-prof --cpu-prof-dir="$OUT/push" "$BASALT_JS" image copy -q --dest-tls-verify=false "oci:$OUT/layout:bench" "docker://$REGISTRY_HOST/bench/up:latest"
rm -rf "$OUT/layout"
for s in pull push; do
  echo "== $s"
  node "$ROOT/bench/cpuprofile-summary.mjs" "$OUT/$s"/*.cpuprofile "${TOP:-20}"
done
