#!/usr/bin/env bash
# Disk-creation benchmark: `basalt disk` against the same steps done by hand, in one run.
#
# Input: the example appliance image (localhost/appliance/lamp:v1) — in basalt's local store
# for basalt, and the same image (same config digest) in podman's storage for the by-hand
# pipeline (copied there once with `basalt image copy`, outside the timing).
#
#   basalt:  bin/basalt disk IMAGE --type raw -o DIR          (a fresh DIR each run)
#   by hand: the bash function by_hand_disk below: podman create + podman export | tar -x,
#            /etc -> /usr/etc, ostree admin init-fs / os-init, ostree commit --tree=dir=,
#            ostree admin deploy --karg=..., /var seeded, mkfs.vfat -C + mmd/mcopy
#            (systemd-boot, kernel, initramfs, the BLS entry), mkfs.ext4 -d of the sysroot,
#            sfdisk (GPT) on a sparse file, dd conv=notrunc,sparse of both images, and
#            removal of its scratch tree (basalt removes its staging tree too).
#
# ROUNDS rounds (default 3) after WARMUP untimed runs of each (default 0); every round runs
# both, alternating which goes first. Each run: `sync`, then /usr/bin/time -f '%e %M'.
# Reported: median wall seconds, ratio basalt/by-hand (target <= 1.2), peak RSS, disk sizes
# (apparent and allocated) and `sfdisk -J` partition counts of both disks.
#
# Environment: IMAGE (default localhost/appliance/lamp:v1), ROUNDS, WARMUP, BENCH_TMP
# (scratch parent, default /var/tmp), RESULTS (also write the markdown table there),
# KEEP=1 (keep the last round's disks in $BENCH_TMP/basalt-bench-disk-last), STRICT=1 (exit 1 when the target is missed).
# Needs root (ostree admin deploy writes a sysroot; mkfs.ext4 -d keeps owners).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE="${IMAGE:-localhost/appliance/lamp:v1}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-0}"
STRICT="${STRICT:-0}"
TARGET_RATIO="1.20"
TIME=/usr/bin/time
BASALT="$ROOT/bin/basalt"

die() { echo "disk-create: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$TIME" ] || die "GNU time missing (apt-get install time)"
for t in podman ostree mkfs.vfat mmd mcopy mkfs.ext4 sfdisk jq chattr; do
  command -v "$t" >/dev/null || die "$t missing"
done
[ -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] || die "systemd-boot-efi missing (by-hand path copies /usr/lib/systemd/boot/efi/systemd-bootx64.efi)"

# ---- the by-hand pipeline ----------------------------------------------------------------
# by_hand_disk IMAGE OUTDIR -> OUTDIR/disk.raw. What a user would script with the stock
# tools; sizes follow the same rule as basalt's (content + slack) so the disks compare.
by_hand_disk() {
  local image=$1 out=$2
  local w="$out/work" rootfs="$out/work/rootfs" sysroot="$out/work/sysroot" esp="$out/work/esp.img" root="$out/work/root.img"
  local disk="$out/disk.raw" MiB=$((1024 * 1024))
  mkdir -p "$rootfs" "$sysroot"
  # 1. the image's root filesystem, from podman's storage
  local cid
  cid=$(podman create "$image" /bin/true)
  podman export "$cid" | tar -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*' -xpf -
  podman rm "$cid" >/dev/null
  # 2. bootable-container layout for ostree: /etc -> /usr/etc
  mv "$rootfs/etc" "$rootfs/usr/etc"
  # 3. ostree: sysroot, stateroot, commit, deploy
  local rootuuid
  rootuuid=$(cat /proc/sys/kernel/random/uuid)
  ostree admin init-fs "$sysroot"
  ostree admin os-init --sysroot="$sysroot" default
  ostree --repo="$sysroot/ostree/repo" commit --tree=dir="$rootfs" -b appliance -s appliance >/dev/null
  ostree admin deploy --sysroot="$sysroot" --os=default --karg="root=PARTUUID=$rootuuid" --karg=rw appliance
  #    the image's /var is copied once, at install (ostree deploys only an empty stateroot /var)
  cp -a "$rootfs/var/." "$sysroot/ostree/deploy/default/var/"
  rm -rf "$rootfs"
  # 4. the ESP: systemd-boot, the deployment's kernel + initramfs and its BLS entry
  local entry bootdir espkb
  entry=$(ls "$sysroot"/boot/loader/entries/*.conf)
  bootdir=$(dirname "$(awk '$1 == "linux" {print $2}' "$entry")")   # /ostree/default-BOOTCSUM
  espkb=$(du -sk "$sysroot/boot$bootdir" | cut -f1)
  espkb=$(( (espkb * 3 / 2 + 16 * 1024 + 1023) / 1024 * 1024 ))
  [ "$espkb" -ge $((64 * 1024)) ] || espkb=$((64 * 1024))
  mkfs.vfat -F 32 -n EFI-SYSTEM -C "$esp" "$espkb" >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/ostree "::$bootdir"
  mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/systemd/systemd-bootx64.efi
  mcopy -i "$esp" "$sysroot/boot$bootdir"/* "::$bootdir/"
  mcopy -i "$esp" "$entry" ::/loader/entries/
  printf 'timeout 3\n' | mcopy -i "$esp" - ::/loader/loader.conf
  # 5. the root filesystem: mkfs.ext4 -d of the sysroot (content + 20 % + journal, as basalt sizes it)
  chattr -R -f -i "$sysroot" || true     # ostree marks the deployment immutable; mke2fs only reads
  local bytes inodes rootmb
  bytes=$(du -s --block-size=1 "$sysroot" | cut -f1); inodes=$(find "$sysroot" | wc -l)
  rootmb=$(( (bytes * 12 / 10 + 96 * MiB) * 100 / 92 / MiB + 1 ))
  [ $((inodes * 16384 * 13 / 10 / MiB + 1)) -le "$rootmb" ] || rootmb=$((inodes * 16384 * 13 / 10 / MiB + 1))
  mkfs.ext4 -q -t ext4 -L root -E root_owner=0:0 -d "$sysroot" "$root" "${rootmb}M"
  # 6. the GPT disk: sparse file, sfdisk, both images placed with dd
  local espmb=$((espkb / 1024))
  truncate -s $(( (1 + espmb + rootmb + 1) * MiB )) "$disk"
  sfdisk -q --no-reread --no-tell-kernel "$disk" <<EOF
label: gpt
start=1MiB, size=${espmb}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI-SYSTEM
start=$((1 + espmb))MiB, size=${rootmb}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$rootuuid, name=root
EOF
  dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$root" of="$disk" bs=1M seek=$((1 + espmb)) conv=notrunc,sparse status=none
  # 7. clean up the scratch tree (basalt removes its staging tree inside its timing too)
  rm -rf "$w"
}

# ---- set-up (outside the timing) ---------------------------------------------------------
WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/basalt-bench-disk.XXXXXX")
cleanup() { chattr -R -f -i "$WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BASALT" image inspect --raw "$IMAGE" > "$WORK/manifest.json" 2>/dev/null \
  || die "$IMAGE is not in basalt's store: bin/basalt base build; bin/basalt build -f ../shared/examples/appliance/Containerfile -t $IMAGE --build-arg BASE=localhost/basalt/debian:bookworm ../shared/examples/appliance"
CONFIG=$(jq -r .config.digest "$WORK/manifest.json")
PODMAN_ID="sha256:$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if [ "$PODMAN_ID" != "$CONFIG" ]; then
  echo "== copying $IMAGE into podman's storage (once, untimed)"
  echo "   $BASALT image copy $IMAGE containers-storage:$IMAGE"
  "$BASALT" image copy "$IMAGE" "containers-storage:$IMAGE" >/dev/null
  PODMAN_ID="sha256:$(podman image inspect --format '{{.Id}}' "$IMAGE")"
  [ "$PODMAN_ID" = "$CONFIG" ] || die "podman's $IMAGE ($PODMAN_ID) is not basalt's ($CONFIG)"
fi

echo "== basalt disk-creation benchmark"
echo "   date:    $(date -u +%FT%TZ)   host: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "   tools:   node $(node --version), ostree $(ostree --version | awk -F"'" '/Version/{print $2}'), podman $(podman --version | awk '{print $3}'), e2fsprogs $(mkfs.ext4 -V 2>&1 | awk 'NR==1{print $2}')"
echo "   git:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "   image:   $IMAGE  config $CONFIG, $(jq '.layers | length' "$WORK/manifest.json") layers, $(jq '[.layers[].size] | add / 1e6 | floor' "$WORK/manifest.json") MB compressed"
echo "   scratch: $WORK"
echo "== exact commands"
echo "   basalt:  $BASALT disk $IMAGE --type raw -o \$WORK/basalt-N"
echo "   by hand: by_hand_disk $IMAGE \$WORK/hand-N, run as bash -c, where"
declare -f by_hand_disk | sed 's/^/     /'

# run_one TOOL DIR -> appends "TOOL seconds rssKB apparent allocated partitions" to $WORK/runs
run_one() {
  local tool=$1 dir=$2 tlog="$WORK/time.$$" rc=0
  sync
  case $tool in
    basalt) "$TIME" -f '%e %M' -o "$tlog" "$BASALT" disk "$IMAGE" --type raw -q -o "$dir" || rc=$? ;;
    hand)   mkdir -p "$dir"
            "$TIME" -f '%e %M' -o "$tlog" bash -c "set -euo pipefail; $(declare -f by_hand_disk); by_hand_disk \"\$1\" \"\$2\"" _ "$IMAGE" "$dir" \
              > "$WORK/hand.log" 2>&1 || { rc=$?; tail -n 20 "$WORK/hand.log" >&2; } ;;
  esac
  local secs rss
  read -r secs rss < <(tail -n1 "$tlog")
  if [ "$rc" != 0 ] || [ ! -f "$dir/disk.raw" ]; then
    echo "   $tool: FAILED (exit $rc)"; echo "$tool FAIL" >> "$WORK/runs"; return
  fi
  local apparent allocated parts
  apparent=$(stat -c %s "$dir/disk.raw")
  allocated=$(( $(stat -c %b "$dir/disk.raw") * $(stat -c %B "$dir/disk.raw") ))
  parts=$(sfdisk -J "$dir/disk.raw" | jq '.partitiontable.partitions | length')
  printf '   %-6s %7.2f s  %6.1f MB RSS  disk %s MB apparent, %s MB allocated, %s partitions\n' \
    "$tool" "$secs" "$(echo "$rss / 1024" | bc -l)" $((apparent / 1000000)) $((allocated / 1000000)) "$parts"
  echo "$tool $secs $rss $apparent $allocated $parts" >> "$WORK/runs"
}
KEPT="${BENCH_TMP:-/var/tmp}/basalt-bench-disk-last"
drop_disk() { # the last round's disks: kept in $KEPT with KEEP=1
  if [ "${KEEP:-0}" = 1 ]; then mkdir -p "$KEPT"; mv "$1/disk.raw" "$KEPT/$(basename "$1").raw"; fi
  rm -rf "$1"
}

: > "$WORK/runs"
for ((i = 1; i <= WARMUP; i++)); do
  echo "== warm-up $i (untimed)"
  run_one basalt "$WORK/warm-basalt-$i" >/dev/null; rm -rf "$WORK/warm-basalt-$i"
  run_one hand "$WORK/warm-hand-$i" >/dev/null; rm -rf "$WORK/warm-hand-$i"
  : > "$WORK/runs"
done
for ((i = 1; i <= ROUNDS; i++)); do
  echo "== round $i"
  if ((i % 2)); then order="basalt hand"; else order="hand basalt"; fi
  for tool in $order; do
    run_one "$tool" "$WORK/$tool-$i"
    if ((i == ROUNDS)); then drop_disk "$WORK/$tool-$i"; else rm -rf "$WORK/$tool-$i"; fi
  done
done

# ---- summary ----------------------------------------------------------------------------
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v t="$1" -v c="$2" '$1 == t && $2 != "FAIL" {print $c}' "$WORK/runs"; }
mb() { awk '{printf "%.0f", $1 / 1e6}'; }
b_med=$(col basalt 2 | median); h_med=$(col hand 2 | median)
b_rss=$(col basalt 3 | sort -n | tail -1); h_rss=$(col hand 3 | sort -n | tail -1)
ratio=$(awk -v b="$b_med" -v h="$h_med" 'BEGIN {printf "%.2f", b / h}')
met=$(awk -v r="$ratio" -v t="$TARGET_RATIO" 'BEGIN {print (r <= t) ? "met" : "MISSED"}')
fails=$(grep -c FAIL "$WORK/runs" || true)
{
  echo "| pipeline | median s (of $(col basalt 2 | wc -l)/$(col hand 2 | wc -l)) | runs s | peak RSS MB | disk apparent MB | disk allocated MB | sfdisk partitions |"
  echo "|---|---|---|---|---|---|---|"
  for t in basalt hand; do
    name=$([ $t = basalt ] && echo "basalt disk --type raw" || echo "by hand (podman export + ostree + mtools + mkfs.ext4 -d + sfdisk)")
    rss=$([ $t = basalt ] && echo "$b_rss" || echo "$h_rss")
    echo "| $name | $([ $t = basalt ] && echo "$b_med" || echo "$h_med") | $(col $t 2 | paste -sd' ') | $(awk -v r="$rss" 'BEGIN {printf "%.0f", r / 1024}') | $(col $t 4 | tail -1 | mb) | $(col $t 5 | tail -1 | mb) | $(col $t 6 | tail -1) |"
  done
  echo
  echo "Ratio basalt/by-hand (medians): **$ratio** (target ≤ $TARGET_RATIO: $met). Failed runs: $fails."
} > "$WORK/table.md"
echo "== results"
cat "$WORK/table.md"
[ -z "${RESULTS:-}" ] || cp "$WORK/table.md" "$RESULTS"
[ "$fails" = 0 ] || exit 1
[ "$STRICT" != 1 ] || [ "$met" = met ] || exit 1
