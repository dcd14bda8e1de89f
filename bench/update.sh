#!/usr/bin/env bash
# Update benchmark, directory level (no VM), on a real ostree sysroot made by
# `basalt install to-filesystem`:
#
#   (a) appliance v1 -> v2 through the registry: bytes the update downloads, counted at the
#       wire by a TCP proxy in front of the registry (bench/count-proxy.mjs), against the
#       compressed size of v2's layers that v1 does not have. Target <= 1.1x.
#   (b) the same image (appliance v2) plus a 1 MB and a 100 MB layer of random bytes: time to
#       import the changed layer(s), which must grow with the changed bytes, not the image
#       size (the full import of the image is printed for scale).
#   (c) basalt's merge + deploy against doing it by hand on the same tree: the merged tree
#       checked out (hardlinks), then `ostree commit --link-checkout-speedup` + `ostree admin
#       deploy`; and from a plain copy of the tree (`ostree commit` hashes every file). Target
#       <= 1.5x of the hardlinked path.
#
# Environment:
#   BASE     base image (default localhost/basalt/debian:bookworm; built if missing)
#   APPDIR   the appliance example (default ../shared/examples/appliance)
#   V1, V2   the appliance images (default localhost/appliance/lamp:v1|v2; built if missing)
#   ROUNDS   rounds of (c) (default 3; the median is printed)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/bin/basalt"
BASE="${BASE:-localhost/basalt/debian:bookworm}"
APPDIR="${APPDIR:-$ROOT/../shared/examples/appliance}"
V1="${V1:-localhost/appliance/lamp:v1}"
V2="${V2:-localhost/appliance/lamp:v2}"
ROUNDS="${ROUNDS:-3}"

die() { echo "update: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (ostree deployments keep owners)"
for t in jq ostree curl node; do command -v "$t" >/dev/null || die "$t missing (./scripts/setup installs it)"; done
WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/basalt-bench-update.XXXXXX")
PROXY_PID=
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  registry_stop
  # ostree makes deployment directories immutable.
  chattr -R -i "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
# shellcheck source=bench/registry.sh
source "$ROOT/bench/registry.sh"
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
have() { "$B" image inspect --raw "$1" >/dev/null 2>&1; }

echo "== basalt update benchmark"
echo "   date: $(date -u +%FT%TZ)   host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)   git: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "   ostree: $(ostree --version | sed -n 's/^ *Version: //p')"

echo "== images"
if ! have "$V1" || ! have "$V2"; then
  have "$BASE" || "$B" base build -t "$BASE"
  "$B" build -f "$APPDIR/Containerfile" -t "$V1" --build-arg "BASE=$BASE" "$APPDIR"
  "$B" build -f "$APPDIR/Containerfile.v2" -t "$V2" --build-arg "BASE=$BASE" "$APPDIR"
fi
"$B" image inspect --raw "$V1" > "$WORK/v1.json"
"$B" image inspect --raw "$V2" > "$WORK/v2.json"
echo "   v1 $V1: $(jq '.layers | length' "$WORK/v1.json") layers, $(mb "$(jq '[.layers[].size] | add' "$WORK/v1.json")") MB compressed"
echo "   v2 $V2: $(jq '.layers | length' "$WORK/v2.json") layers, $(mb "$(jq '[.layers[].size] | add' "$WORK/v2.json")") MB compressed"

registry_start
node "$ROOT/bench/count-proxy.mjs" "$REGISTRY_HOST" "$WORK/count" > "$WORK/proxy.port" &
PROXY_PID=$!
for _ in $(seq 50); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
PROXY="127.0.0.1:$(cat "$WORK/proxy.port")"
# Bytes received by clients of the proxy so far.
counted() {
  local before; before=$(stat -c %Y.%s "$WORK/count" 2>/dev/null || echo none)
  kill -USR1 "$PROXY_PID"
  for _ in $(seq 50); do [ "$(stat -c %Y.%s "$WORK/count" 2>/dev/null || echo none)" != "$before" ] && break; sleep 0.1; done
  sleep 0.2
  cut -d' ' -f1 "$WORK/count"
}
IMG="bench/appliance:latest"
push() { "$B" image copy -q --dest-tls-verify=false "$1" "docker://$REGISTRY_HOST/$IMG"; }

echo "== (a) v1 -> v2 through the registry (sysroot directory $WORK/root)"
push "$V1"
mkdir "$WORK/root"
t0=$(now)
"$B" install to-filesystem --source-imgref "docker://$PROXY/$IMG" --tls-verify=false "$WORK/root" >/dev/null
t1=$(now)
install_bytes=$(counted)
echo "   install v1: $(secs "$t0" "$t1") s, $(mb "$install_bytes") MB downloaded"
push "$V2"
before=$(counted)
t0=$(now)
"$B" upgrade --sysroot "$WORK/root" --tls-verify=false --json > "$WORK/upgrade.json"
t1=$(now)
upgrade_bytes=$(( $(counted) - before ))
read -r changed_n changed_b < <(jq -r --slurpfile old "$WORK/v1.json" '[.layers[] | select(.digest as $d | ($old[0].layers | map(.digest) | index($d)) == null) | .size] | "\(length) \(add // 0)"' "$WORK/v2.json")
echo "   upgrade v1 -> v2: $(secs "$t0" "$t1") s wall (download, import, merge, deploy); $(jq -r '.import.imported' "$WORK/upgrade.json") layer(s) imported"
echo "   changed layers: $changed_n, $(mb "$changed_b") MB compressed; downloaded at the wire: $(mb "$upgrade_bytes") MB"
RATIO_A=$(ratio "$upgrade_bytes" "$changed_b")
echo "   ratio downloaded / changed = $RATIO_A (target <= 1.1)"

echo "== (b) import time against changed bytes (same image: v2 + one random layer)"
for size in 1 100; do
  mkdir -p "$WORK/change-$size/usr/share/bench-update"
  head -c "$((size * 1000 * 1000))" /dev/urandom > "$WORK/change-$size/usr/share/bench-update/blob-$size"
  "$B" image append "$V2" "$WORK/change-$size" --owner-root -t "localhost/bench-update/app:plus${size}mb" >/dev/null
done
# One sysroot for (b) and (c): v2 imported in full first (the scale), then each change
# imports only its own new layer (v2's layers are in the repository).
phases() { node "$ROOT/bench/update-phases.mjs" "$@"; }
wipe() { chattr -R -i "$1" 2>/dev/null || true; rm -rf "$1"; }
wipe "$WORK/root" # (a)'s sysroot: its layer cache would make the imports below free
SYS="$WORK/sysroot"
mkdir -p "$SYS"
ostree admin init-fs "$SYS" >/dev/null 2>&1
ostree admin os-init --sysroot="$SYS" default >/dev/null
REPO="$SYS/ostree/repo"
full=$(phases "$SYS" "$V2" | tail -n 1)
FULL_S=$(jq -r .importS <<<"$full")
echo "   full import of v2 ($(jq -r .layers <<<"$full") layers, $(mb "$(jq -r .importedBytes <<<"$full")") MB compressed): import $FULL_S s, merge $(jq -r .mergeS <<<"$full") s, deploy $(jq -r .deployS <<<"$full") s"
declare -A IMPORT_S
for size in 1 100; do
  line=$(phases "$SYS" "localhost/bench-update/app:plus${size}mb" | tail -n 1)
  IMPORT_S[$size]=$(jq -r .importS <<<"$line")
  echo "   +${size} MB: $(jq -r .importedLayers <<<"$line") layer(s) imported ($(mb "$(jq -r .importedBytes <<<"$line")") MB compressed): import ${IMPORT_S[$size]} s, merge $(jq -r .mergeS <<<"$line") s, deploy $(jq -r .deployS <<<"$line") s"
done
echo "   import 100 MB / import 1 MB = $(ratio "${IMPORT_S[100]}" "${IMPORT_S[1]}"); import 1 MB / full import = $(ratio "${IMPORT_S[1]}" "$FULL_S")"

echo "== (c) merge + deploy: basalt against ostree commit + ostree admin deploy by hand ($ROUNDS rounds)"
: > "$WORK/c-basalt"; : > "$WORK/c-hand"; : > "$WORK/c-plain"
for r in $(seq "$ROUNDS"); do
  # basalt: the layers are in the repository; a new image name makes it merge again, then deploy.
  "$B" image mutate "$V2" --label "org.basalt.bench.round=$r" -t "localhost/bench-update/app:round$r" >/dev/null
  line=$(phases "$SYS" "localhost/bench-update/app:round$r" | tail -n 1)
  awk -v m="$(jq -r .mergeS <<<"$line")" -v d="$(jq -r .deployS <<<"$line")" 'BEGIN {printf "%.3f\n", m + d}' >> "$WORK/c-basalt"
  commit=$(jq -r .commit <<<"$line")
  # By hand, the same tree: checked out with hardlinks (ostree's fast path), and as a plain copy.
  wipe "$REPO/tmp/hand"; wipe "$WORK/plain"
  ostree --repo="$REPO" checkout -H "$commit" "$REPO/tmp/hand"
  ostree --repo="$REPO" checkout --force-copy "$commit" "$WORK/plain"
  sync
  t0=$(now)
  ostree --repo="$REPO" commit --tree=dir="$REPO/tmp/hand" --link-checkout-speedup --bootable -b "hand/round$r" >/dev/null
  ostree admin deploy --sysroot="$SYS" --os=default "hand/round$r" >/dev/null 2>>"$WORK/ostree-notes.log" || die "ostree admin deploy failed: $(tail -n 5 "$WORK/ostree-notes.log")" # keeps its notes about /var content out of the table
  t1=$(now)
  secs "$t0" "$t1" >> "$WORK/c-hand"; echo >> "$WORK/c-hand"
  t0=$(now)
  ostree --repo="$REPO" commit --tree=dir="$WORK/plain" --bootable -b "plain/round$r" >/dev/null
  ostree admin deploy --sysroot="$SYS" --os=default "plain/round$r" >/dev/null 2>>"$WORK/ostree-notes.log" || die "ostree admin deploy failed: $(tail -n 5 "$WORK/ostree-notes.log")"
  t1=$(now)
  secs "$t0" "$t1" >> "$WORK/c-plain"; echo >> "$WORK/c-plain"
  echo "   round $r: basalt merge+deploy $(tail -n 1 "$WORK/c-basalt") s; by hand (hardlinked tree) $(tail -n 1 "$WORK/c-hand") s; by hand (plain tree) $(tail -n 1 "$WORK/c-plain") s"
done
C_B=$(median < "$WORK/c-basalt"); C_H=$(median < "$WORK/c-hand"); C_P=$(median < "$WORK/c-plain")
RATIO_C=$(ratio "$C_B" "$C_H")

echo "== summary"
printf '| measure | value | target |\n|---|---|---|\n'
printf '| (a) downloaded / changed compressed layers, v1 -> v2 | %s (%s MB / %s MB) | <= 1.1 |\n' "$RATIO_A" "$(mb "$upgrade_bytes")" "$(mb "$changed_b")"
printf '| (b) import of a 1 MB change | %s s | grows with the change |\n' "${IMPORT_S[1]}"
printf '| (b) import of a 100 MB change | %s s | |\n' "${IMPORT_S[100]}"
printf '| (b) full import of the image, for scale | %s s | |\n' "$FULL_S"
printf '| (c) basalt merge + deploy (median) | %s s | |\n' "$C_B"
printf '| (c) ostree commit (hardlinked tree) + admin deploy (median) | %s s | |\n' "$C_H"
printf '| (c) ostree commit (plain tree) + admin deploy (median) | %s s | |\n' "$C_P"
printf '| (c) ratio basalt / by hand (hardlinked) | %s | <= 1.5 |\n' "$RATIO_C"
printf '| (c) ratio basalt / by hand (plain tree) | %s | |\n' "$(ratio "$C_B" "$C_P")"
