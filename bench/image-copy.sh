#!/usr/bin/env bash
# Image-copy benchmark: basalt against skopeo, side by side on the same input in one run.
#
#   (a) pull: registry -> OCI layout   (a fresh, empty layout directory each run)
#   (b) push: OCI layout -> registry   (a fresh repository each run, on an empty registry)
#
# Each scenario runs ROUNDS rounds; every round runs both tools, alternating which goes
# first. Reported per tool: median wall time and peak RSS (GNU time's %e and %M).
# Every run (both tools) is checked afterwards: the copied manifest's digest must equal the
# source's (nothing asks for a change, so digests are preserved), with every blob present
# at its size (and, with VERIFY_BLOBS=1, its content hashed).
#
# Environment:
#   BASALT        copy command prefix for basalt  (default: "<repo>/bin/basalt image copy");
#                 e.g. BASALT="skopeo copy" to exercise the harness before basalt works
#   SKOPEO        copy command prefix for skopeo  (default: "skopeo copy")
#   ROUNDS        rounds per scenario (default 5)
#   WARMUP        untimed warm-up runs per tool and scenario (default 1)
#   SCENARIOS     "pull push" (default) or one of them
#   FIXTURE_IMAGE fixture in podman's storage (default localhost/basalt-bench/debian:fixture;
#                 bench/fixture-debian.sh builds it)
#   VERIFY_BLOBS  1 (default): also hash every copied blob; 0: existence and size only
#   BENCH_TMP     where the scratch directory goes (default /var/tmp)
#   RESULTS       also write the summary table (markdown) to this file
#   STRICT        1: exit non-zero when a target is missed (not only when basalt fails)
#
# Exit status: 0 when every basalt run succeeded and verified; 1 otherwise (2: set-up error).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
read -ra BASALT_CMD <<< "${BASALT:-$ROOT/bin/basalt image copy}"
read -ra SKOPEO_CMD <<< "${SKOPEO:-skopeo copy}"
ROUNDS="${ROUNDS:-5}"
WARMUP="${WARMUP:-1}"
SCENARIOS="${SCENARIOS:-pull push}"
FIXTURE_IMAGE="${FIXTURE_IMAGE:-localhost/basalt-bench/debian:fixture}"
VERIFY_BLOBS="${VERIFY_BLOBS:-1}"
STRICT="${STRICT:-0}"
TARGET_RATIO="1.00"
TARGET_RSS_MB=200
TIME=/usr/bin/time

die() { echo "image-copy: $*" >&2; exit 2; }
[ -x "$TIME" ] || die "GNU time missing (apt-get install time)"
command -v skopeo >/dev/null || die "skopeo missing"
command -v jq >/dev/null || die "jq missing"
podman image exists "$FIXTURE_IMAGE" || die "fixture $FIXTURE_IMAGE missing: run bench/fixture-debian.sh first"

# shellcheck source=bench/registry.sh
source "$BENCH/registry.sh"

WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/basalt-bench-copy.XXXXXX")
PUSH_REG_PID=""
PUSH_REG_DIR=""
cleanup() {
  stop_push_registry
  registry_stop
  rm -rf "$WORK"
}
registry_start || die "could not start the registry"
trap cleanup EXIT
SRC_HOST="$REGISTRY_HOST"
SRC_REF="docker://$SRC_HOST/bench/debian:src"

# A second, empty registry per push run, so that no blob already exists at the destination
# and skopeo's blob-info cache (/var/lib/containers/cache) cannot turn the upload into a
# cross-repository mount from a repository it saw earlier on the same registry: every
# push run of either tool uploads every blob. Started outside the timed command.
start_push_registry() {
  local saved_host=$REGISTRY_HOST saved_pid=$REGISTRY_PID saved_dir=$REGISTRY_DIR
  registry_start
  PUSH_HOST=$REGISTRY_HOST PUSH_REG_PID=$REGISTRY_PID PUSH_REG_DIR=$REGISTRY_DIR
  REGISTRY_HOST=$saved_host REGISTRY_PID=$saved_pid REGISTRY_DIR=$saved_dir
  trap cleanup EXIT
}
stop_push_registry() {
  if [ -n "$PUSH_REG_PID" ]; then
    kill "$PUSH_REG_PID" 2>/dev/null || true
    wait "$PUSH_REG_PID" 2>/dev/null || true
    PUSH_REG_PID=""
  fi
  [ -z "$PUSH_REG_DIR" ] || rm -rf "$PUSH_REG_DIR"
  PUSH_REG_DIR=""
}

echo "== basalt image-copy benchmark"
echo "   date:     $(date -u +%FT%TZ)   host: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "   node:     $(node --version)   skopeo: $(skopeo --version | awk '{print $3}')"
echo "   basalt:   ${BASALT_CMD[*]}"
echo "   git:      $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "   registry: $SRC_HOST (docker-registry, storage $REGISTRY_DIR)"
echo "   scratch:  $WORK"

# ---- seed -------------------------------------------------------------------------------
echo "== seeding $SRC_REF from containers-storage:$FIXTURE_IMAGE (gzip layers, OCI manifest)"
skopeo copy -q --format oci --dest-tls-verify=false \
  "containers-storage:$FIXTURE_IMAGE" "$SRC_REF" 2> >(grep -v 'graphdriver' >&2) >/dev/null
SRC_MANIFEST="$WORK/src-manifest.json"
skopeo inspect --raw --tls-verify=false "$SRC_REF" > "$SRC_MANIFEST"
SRC_DIGEST="sha256:$(sha256sum < "$SRC_MANIFEST" | cut -d' ' -f1)"
SRC_MEDIATYPE=$(jq -r '.mediaType // "application/vnd.oci.image.manifest.v1+json"' "$SRC_MANIFEST")
# digest size per line: config and layers
jq -r '.config, .layers[] | "\(.digest) \(.size)"' "$SRC_MANIFEST" > "$WORK/src-blobs.txt"
nlayers=$(jq '.layers | length' "$SRC_MANIFEST")
total=$(awk '{s+=$2} END {print s}' "$WORK/src-blobs.txt")
echo "   manifest $SRC_DIGEST ($SRC_MEDIATYPE)"
echo "   $nlayers layers, $((total / 1000000)) MB of blobs (compressed):"
jq -r '.layers[] | "     \(.digest[7:19])  \(.size / 1000000 | floor) MB  \(.mediaType)"' "$SRC_MANIFEST"

# The push scenario's source: one OCI layout, written once by skopeo, read by both tools.
SRC_LAYOUT="$WORK/src-layout"
if [[ " $SCENARIOS " == *" push "* ]]; then
  skopeo copy -q --src-tls-verify=false "$SRC_REF" "oci:$SRC_LAYOUT:bench" >/dev/null
  got="sha256:$(skopeo inspect --raw "oci:$SRC_LAYOUT:bench" | sha256sum | cut -d' ' -f1)"
  [ "$got" = "$SRC_DIGEST" ] || die "seed layout manifest $got != $SRC_DIGEST"
fi

# ---- verification -----------------------------------------------------------------------
# verify_layout DIR TAG -> 0 when the layout holds the source image under TAG, byte for byte
verify_layout() {
  local dir=$1 tag=$2 got d s f
  [ -f "$dir/oci-layout" ] || { echo "no oci-layout file"; return 1; }
  got=$(jq -r --arg t "$tag" '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)][0].digest // empty' "$dir/index.json")
  [ "$got" = "$SRC_DIGEST" ] || { echo "index.json: $tag -> '${got}', want $SRC_DIGEST"; return 1; }
  f="$dir/blobs/sha256/${SRC_DIGEST#sha256:}"
  [ -f "$f" ] && [ "sha256:$(sha256sum < "$f" | cut -d' ' -f1)" = "$SRC_DIGEST" ] \
    || { echo "manifest blob missing or wrong"; return 1; }
  while read -r d s; do
    f="$dir/blobs/sha256/${d#sha256:}"
    [ -f "$f" ] || { echo "blob $d missing"; return 1; }
    [ "$(stat -c %s "$f")" = "$s" ] || { echo "blob $d: size $(stat -c %s "$f"), want $s"; return 1; }
    if [ "$VERIFY_BLOBS" = 1 ] && [ "sha256:$(sha256sum < "$f" | cut -d' ' -f1)" != "$d" ]; then
      echo "blob $d: content does not match its digest"; return 1
    fi
  done < "$WORK/src-blobs.txt"
  # and an independent reader agrees
  got="sha256:$(skopeo inspect --raw "oci:$dir:$tag" | sha256sum | cut -d' ' -f1)" || return 1
  [ "$got" = "$SRC_DIGEST" ] || { echo "skopeo reads $got"; return 1; }
}

# verify_registry HOST REPO -> 0 when HOST/REPO:latest is the source image, byte for byte
verify_registry() {
  local host=$1 repo=$2 got ct d s len
  got="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$host/$repo:latest" | sha256sum | cut -d' ' -f1)" \
    || { echo "skopeo inspect failed"; return 1; }
  [ "$got" = "$SRC_DIGEST" ] || { echo "manifest digest $got, want $SRC_DIGEST"; return 1; }
  ct=$(curl -fsSI -H "Accept: $SRC_MEDIATYPE" "http://$host/v2/$repo/manifests/latest" \
       | tr -d '\r' | awk -F': ' 'tolower($1)=="content-type"{print $2}')
  [ "$ct" = "$SRC_MEDIATYPE" ] || { echo "manifest Content-Type '$ct', want $SRC_MEDIATYPE"; return 1; }
  while read -r d s; do
    len=$(curl -fsSI "http://$host/v2/$repo/blobs/$d" | tr -d '\r' \
          | awk -F': ' 'tolower($1)=="content-length"{print $2}') || { echo "blob $d missing"; return 1; }
    [ "$len" = "$s" ] || { echo "blob $d: length '$len', want $s"; return 1; }
    if [ "$VERIFY_BLOBS" = 1 ] && \
       [ "sha256:$(curl -fsSL "http://$host/v2/$repo/blobs/$d" | sha256sum | cut -d' ' -f1)" != "$d" ]; then
      echo "blob $d: content does not match its digest"; return 1
    fi
  done < "$WORK/src-blobs.txt"
}

# ---- measurement ------------------------------------------------------------------------
RUNS="$WORK/runs.tsv"   # scenario tool round seconds rss_kb status
: > "$RUNS"
BASALT_FAILED=0

# timed NAME LOG CMD... -> sets T_SEC T_RSS_KB T_RC
timed() {
  local log=$1; shift
  local tf="$WORK/time.out"
  set +e
  "$TIME" -f '%e %M' -o "$tf" "$@" > "$log" 2>&1
  T_RC=$?
  set -e
  read -r T_SEC T_RSS_KB < <(tail -n 1 "$tf")
  # when the command is killed GNU time writes a "Command terminated..." line first
  [[ "$T_SEC" =~ ^[0-9.]+$ ]] || { T_SEC=NaN; T_RSS_KB=0; }
}

# run_one SCENARIO TOOL ROUND(0 = warm-up)
run_one() {
  local scen=$1 tool=$2 round=$3 label cmd=() dir repo host err status
  if [ "$tool" = basalt ]; then cmd=("${BASALT_CMD[@]}"); else cmd=("${SKOPEO_CMD[@]}"); fi
  label=$([ "$round" = 0 ] && echo warm-up || echo "round $round")
  case $scen in
    pull)
      dir="$WORK/pull-$tool-$round"
      rm -rf "$dir"; mkdir -p "$dir"      # fresh, empty directory each run
      cmd+=(--src-tls-verify=false "$SRC_REF" "oci:$dir:bench")
      ;;
    push)
      start_push_registry
      host=$PUSH_HOST
      repo="bench/up-$tool-$round"
      cmd+=(--dest-tls-verify=false "oci:$SRC_LAYOUT:bench" "docker://$host/$repo:latest")
      ;;
  esac
  # Write back the previous run's dirty pages first (nothing is dropped from the page cache),
  # so that one run's writeback does not land in the next run's timing.
  sync
  timed "$WORK/$scen-$tool-$round.log" "${cmd[@]}"
  status=ok
  if [ "$T_RC" != 0 ]; then
    status="FAILED(exit $T_RC)"
    sed 's/^/      | /' "$WORK/$scen-$tool-$round.log" | tail -n 20
  else
    if [ "$scen" = pull ]; then err=$(verify_layout "$dir" bench 2>&1) || status="WRONG: $err"
    else err=$(verify_registry "$host" "$repo" 2>&1) || status="WRONG: $err"; fi
  fi
  printf '   %-6s %-7s %-8s %7s s  %7s MB  %s\n' "$scen" "$tool" "$label" "$T_SEC" \
    "$(awk -v k="$T_RSS_KB" 'BEGIN{printf "%.1f", k/1024}')" "$status"
  [ "$scen" = pull ] && rm -rf "$dir"
  [ "$scen" = push ] && stop_push_registry
  if [ "$status" != ok ] && [ "$tool" = basalt ]; then BASALT_FAILED=1; fi
  if [ "$round" != 0 ]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$tool" "$round" "$T_SEC" "$T_RSS_KB" "$status" >> "$RUNS"
  fi
}

describe() {
  echo "== commands"
  for scen in $SCENARIOS; do
    case $scen in
      pull)
        echo "   (a) pull, basalt: ${BASALT_CMD[*]} --src-tls-verify=false $SRC_REF oci:DIR:bench"
        echo "   (a) pull, skopeo: ${SKOPEO_CMD[*]} --src-tls-verify=false $SRC_REF oci:DIR:bench"
        echo "       (DIR: a fresh, empty directory each run, removed after verification)"
        ;;
      push)
        echo "   (b) push, basalt: ${BASALT_CMD[*]} --dest-tls-verify=false oci:$SRC_LAYOUT:bench docker://HOST/bench/up-basalt-N:latest"
        echo "   (b) push, skopeo: ${SKOPEO_CMD[*]} --dest-tls-verify=false oci:$SRC_LAYOUT:bench docker://HOST/bench/up-skopeo-N:latest"
        echo "       (HOST: a fresh, empty docker-registry on 127.0.0.1 each run)"
        ;;
    esac
  done
  echo "   each timed as: $TIME -f '%e %M' CMD   (wall seconds, peak RSS KB), after a sync"
}
describe

# Fixed start-up cost of each command (no copying): median of 5 `COPY-COMMAND --help` runs
# (loads what a copy loads, copies nothing).
startup() {
  local i out=()
  for i in 1 2 3 4 5; do
    "$TIME" -f '%e %M' -o "$WORK/startup.out" "$@" >/dev/null 2>&1 || true
    out+=("$(tail -n 1 "$WORK/startup.out")")
  done
  printf '%s\n' "${out[@]}" | sort -n | sed -n 3p | awk '{printf "%.2f s, %.1f MB", $1, $2/1024}'
}
echo "== start-up (copy command with --help, median of 5): basalt $(startup "${BASALT_CMD[@]}" --help); skopeo $(startup "${SKOPEO_CMD[@]}" --help); bare \`node -e 0\` $(startup node -e 0)"

for scen in $SCENARIOS; do
  echo "== scenario $scen: $WARMUP warm-up + $ROUNDS rounds per tool, alternating"
  for ((r = 1; r <= WARMUP; r++)); do run_one "$scen" basalt 0; run_one "$scen" skopeo 0; done
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then run_one "$scen" basalt "$r"; run_one "$scen" skopeo "$r"
    else run_one "$scen" skopeo "$r"; run_one "$scen" basalt "$r"; fi
  done
done

# ---- summary ----------------------------------------------------------------------------
# median of successful runs' seconds; peak = max RSS over successful runs
stat_of() { # SCENARIO TOOL -> "median_s max_rss_mb n_ok"
  awk -F'\t' -v s="$1" -v t="$2" '$1==s && $2==t && $6=="ok" {print $4, $5}' "$RUNS" | sort -n | awk '
    { sec[NR]=$1; if ($2>rss) rss=$2 }
    END {
      if (NR==0) { print "NaN NaN 0"; exit }
      m = (NR%2) ? sec[(NR+1)/2] : (sec[NR/2]+sec[NR/2+1])/2
      printf "%.2f %.1f %d\n", m, rss/1024, NR
    }'
}
TABLE="$WORK/table.md"
{
  echo "| scenario | basalt median s | skopeo median s | ratio basalt/skopeo | basalt peak RSS MB | skopeo peak RSS MB | target ratio <= $TARGET_RATIO | target basalt RSS < $TARGET_RSS_MB MB |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$TABLE"
MISSED=0
for scen in $SCENARIOS; do
  read -r bm br bn < <(stat_of "$scen" basalt)
  read -r sm sr sn < <(stat_of "$scen" skopeo)
  name=$([ "$scen" = pull ] && echo "(a) registry -> OCI layout" || echo "(b) OCI layout -> registry")
  if [ "$bn" -gt 0 ] && [ "$sn" -gt 0 ]; then
    ratio=$(awk -v b="$bm" -v s="$sm" 'BEGIN{printf "%.2f", b/s}')
    tr=$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN{print (r<=t) ? "met" : "MISSED"}')
    tm=$(awk -v r="$br" -v t="$TARGET_RSS_MB" 'BEGIN{print (r<t) ? "met" : "MISSED"}')
  else
    ratio=n/a; tr=n/a; tm=n/a
  fi
  [ "$tr" = met ] && [ "$tm" = met ] || MISSED=1
  [ "$bn" = "$ROUNDS" ] || bm="$bm ($bn/$ROUNDS ok)"
  [ "$sn" = "$ROUNDS" ] || sm="$sm ($sn/$ROUNDS ok)"
  echo "| $name | $bm | $sm | $ratio | $br | $sr | $tr | $tm |" >> "$TABLE"
done
echo "== summary (median of $ROUNDS rounds; peak RSS = highest of the rounds; MB = 2^20 bytes)"
cat "$TABLE"
if [ -n "${RESULTS:-}" ]; then cp "$TABLE" "$RESULTS"; echo "   (table written to $RESULTS)"; fi

if [ "$BASALT_FAILED" = 1 ]; then echo "image-copy: basalt failed or produced a wrong copy" >&2; exit 1; fi
if [ "$STRICT" = 1 ] && [ "$MISSED" = 1 ]; then echo "image-copy: a target was missed" >&2; exit 1; fi
exit 0
