#!/usr/bin/env bash
# Update-size benchmark: how many layer bytes change between v1 and v2 of the example
# appliance (../shared/examples/appliance/Containerfile{,.v2}: v2 adds cockpit), for
#
#   (a) the normal images: built FROM the one-layer base (basalt base build), layers as
#       podman built them;
#   (b) the same Containerfiles built FROM a rechunked base (basalt base build --rechunk N).
#
# "Changed" = layers of v2 whose digest is not among v1's layers; their compressed sizes are
# summed (what a device pulls for the update). Also counted by diff-id (uncompressed digest,
# from the image configuration), so a re-compression cannot hide or fake a change.
# Builds run through `bin/basalt build` (podman build with its layer cache, lint, store).
#
# Environment:
#   BASE       base image (default localhost/basalt/debian:bookworm; built if missing)
#   CHUNKS     N for --rechunk (default 8)
#   BASE_R     rechunked base (default localhost/basalt/debian:bookworm-r$CHUNKS; built if missing)
#   APPDIR     the appliance example (default ../shared/examples/appliance)
#   NOCACHE=1  also build v2 with `podman build --no-cache` (a build machine without the
#              v1 build's layer cache, e.g. a fresh CI runner), copied into basalt's store
#   RESULTS    also write the markdown table there
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/bin/basalt"
BASE="${BASE:-localhost/basalt/debian:bookworm}"
CHUNKS="${CHUNKS:-8}"
BASE_R="${BASE_R:-localhost/basalt/debian:bookworm-r$CHUNKS}"
APPDIR="${APPDIR:-$ROOT/../shared/examples/appliance}"
NOCACHE="${NOCACHE:-0}"

die() { echo "rechunk: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root"
command -v jq >/dev/null || die "jq missing"
WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/basalt-bench-rechunk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

run() { echo "   \$ $*"; local t0=$SECONDS; "$@"; echo "     ($((SECONDS - t0)) s)"; }
have() { "$B" image inspect --raw "$1" >/dev/null 2>&1; }

echo "== basalt rechunk benchmark"
echo "   date: $(date -u +%FT%TZ)   host: $(nproc) CPUs   git: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"

echo "== bases"
have "$BASE" || run "$B" base build -t "$BASE"
have "$BASE_R" || run "$B" base build --rechunk "$CHUNKS" -t "$BASE_R"

echo "== appliance builds (podman's layer cache applies: v2 repeats v1's first RUN steps)"
build() { # TAG CONTAINERFILE BASE
  run "$B" build -f "$APPDIR/$2" -t "$1" --build-arg "BASE=$3" "$APPDIR"
}
build localhost/appliance/lamp:v1 Containerfile "$BASE"
build localhost/appliance/lamp:v2 Containerfile.v2 "$BASE"
build localhost/appliance/lamp:v1-r$CHUNKS Containerfile "$BASE_R"
build localhost/appliance/lamp:v2-r$CHUNKS Containerfile.v2 "$BASE_R"
if [ "$NOCACHE" = 1 ]; then
  for v in "" "-r$CHUNKS"; do
    base=$([ -z "$v" ] && echo "$BASE" || echo "$BASE_R")
    run podman build -q --no-cache -f "$APPDIR/Containerfile.v2" -t "localhost/appliance/lamp:v2$v-nocache" --build-arg "BASE=$base" "$APPDIR"
    run "$B" image copy -q "containers-storage:localhost/appliance/lamp:v2$v-nocache" "localhost/appliance/lamp:v2$v-nocache"
  done
fi

# facts IMAGE -> $WORK/NAME.{manifest,config}.json
facts() {
  local f="$WORK/${1//[\/:]/_}"
  [ -f "$f.manifest.json" ] || { "$B" image inspect --raw "$1" > "$f.manifest.json"; "$B" image inspect --config "$1" > "$f.config.json"; }
  echo "$f"
}
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }

# compare V1 V2 LABEL -> a table row
compare() {
  local a b
  a=$(facts "$1"); b=$(facts "$2")
  local total1 total2 n2 changed_n changed_b diff_n diff_b base_n
  total1=$(jq '[.layers[].size] | add' "$a.manifest.json")
  total2=$(jq '[.layers[].size] | add' "$b.manifest.json")
  n2=$(jq '.layers | length' "$b.manifest.json")
  read -r changed_n changed_b < <(jq -r --slurpfile old "$a.manifest.json" \
    '[ .layers[] | select(.digest as $d | ($old[0].layers | map(.digest) | index($d)) == null) ] | "\(length) \(map(.size) | add // 0)"' "$b.manifest.json")
  # by diff-id: pair v2's layers with their diff-ids, keep those v1 lacks
  read -r diff_n diff_b < <(jq -r --slurpfile c2 "$b.config.json" --slurpfile c1 "$a.config.json" \
    '[ [.layers, $c2[0].rootfs.diff_ids] | transpose[] | select(.[1] as $d | ($c1[0].rootfs.diff_ids | index($d)) == null) | .[0].size ] | "\(length) \(add // 0)"' "$b.manifest.json")
  echo "| $3 | $(jq '.layers | length' "$a.manifest.json") / $n2 | $(mb "$total1") / $(mb "$total2") | $changed_n | $(mb "$changed_b") | $(awk -v c="$changed_b" -v t="$total2" 'BEGIN {printf "%.1f %%", 100 * c / t}') | $diff_n / $(mb "$diff_b") |"
}
layers() { # IMAGE -> one line per layer
  local f; f=$(facts "$1")
  jq -r '.layers[] | "     \(.digest[7:19])  \(.size / 1e6 * 10 | floor / 10) MB"' "$f.manifest.json"
}

echo "== layers"
for img in "$BASE" "$BASE_R" localhost/appliance/lamp:v1 localhost/appliance/lamp:v2 "localhost/appliance/lamp:v1-r$CHUNKS" "localhost/appliance/lamp:v2-r$CHUNKS"; do
  echo "   $img"; layers "$img"
done

{
  echo "| images (v1 → v2) | layers v1 / v2 | size v1 / v2 MB (compressed) | changed layers | changed MB | of v2 | by diff-id: layers / MB |"
  echo "|---|---|---|---|---|---|---|"
  compare localhost/appliance/lamp:v1 localhost/appliance/lamp:v2 "(a) FROM $BASE (1-layer base)"
  compare "localhost/appliance/lamp:v1-r$CHUNKS" "localhost/appliance/lamp:v2-r$CHUNKS" "(b) FROM $BASE_R (--rechunk $CHUNKS)"
  if [ "$NOCACHE" = 1 ]; then
    compare localhost/appliance/lamp:v1 localhost/appliance/lamp:v2-nocache "(a') v2 built --no-cache, 1-layer base"
    compare "localhost/appliance/lamp:v1-r$CHUNKS" "localhost/appliance/lamp:v2-r$CHUNKS-nocache" "(b') v2 built --no-cache, rechunked base"
  fi
} > "$WORK/table.md"
echo "== results"
cat "$WORK/table.md"
[ -z "${RESULTS:-}" ] || cp "$WORK/table.md" "$RESULTS"
