#!/usr/bin/env bash
# ISO remaster benchmark: add a kickstart and change kernel arguments in a >= 1 GB
# installer ISO, with the isomd5sum checksum implanted, side by side in one run:
#
#   basalt  bin/basalt iso remaster IN OUT --ks KS -c ARGS            (one pass, md5 while writing)
#   (a)     xorriso -indev IN -outdev OUT -map KS /ks -map CFGS... (edited beforehand)
#             -boot_image any replay  &&  implantisomd5 OUT           (mkksiso's path)
#   (b)     cp IN OUT && implantisomd5 OUT                            (one write + one hash pass)
#   and, for the stretch target, `cp IN OUT` and `md5sum IN` alone.
#
# Every timed command ends with `sync` (inside the timing), outputs are removed between runs
# (outside it). ROUNDS rounds (default 5); each round runs every contender, rotating which
# goes first. Reported: every run, the median per contender, and basalt's ratio to (a), to
# (b) and to max(cp, md5sum). basalt's output is checked afterwards with checkisomd5 and
# xorriso (outside the timing).
#
# The fixture (built once, kept in $BENCH_TMP/basalt-bench-iso/fixture-lorax.iso): the
# CentOS/Fedora layout (isolinux + images/efiboot.img, xorriso with lorax's mkisofs
# arguments) over a kernel, a 64 MiB initrd and FIXTURE_MB MiB of random data in 256 MiB
# files (default 1100 MiB, so the ISO is > 1 GB). Not grub-mkrescue's layout: xorriso's
# `-boot_image any replay` refuses it ("Overlapping GPT entries requested", its HFS+ hybrid).
#
# Environment: ROUNDS (5), FIXTURE_MB (1100), BENCH_TMP (/var/tmp), BASALT (<repo>/bin/basalt),
# STRICT=1 to exit 1 when the target (<= 1.0x (b)) is missed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS="${ROUNDS:-5}"
FIXTURE_MB="${FIXTURE_MB:-1100}"
BASALT="${BASALT:-$ROOT/bin/basalt}"
STRICT="${STRICT:-0}"
KS="$ROOT/../shared/examples/appliance/mykickstart.ks"
ARGS="inst.text basalt.bench=1"
TIME=/usr/bin/time

die() { echo "iso-remaster: $*" >&2; exit 2; }
for t in xorriso implantisomd5 checkisomd5 md5sum; do command -v "$t" >/dev/null || die "$t missing (run scripts/setup)"; done
[ -x "$TIME" ] || die "GNU time missing (apt-get install time)"
[ -f "$KS" ] || die "kickstart $KS missing"

BASE="${BENCH_TMP:-/var/tmp}/basalt-bench-iso"
mkdir -p "$BASE"
IN="$BASE/fixture-lorax.iso"
VOLID="BENCH-ISO-x86_64"
LABEL="hd:LABEL=$VOLID"
if [ ! -f "$IN" ]; then
  echo "building the fixture $IN (${FIXTURE_MB} MiB of random data, lorax layout)"
  for t in mkfs.vfat mcopy mmd; do command -v "$t" >/dev/null || die "$t missing"; done
  tree=$(mktemp -d "$BASE/tree.XXXXXX")
  mkdir -p "$tree/isolinux" "$tree/images/pxeboot" "$tree/EFI/BOOT" "$tree/data"
  kernel=$(ls /boot/vmlinuz-* 2>/dev/null | head -1 || true)
  if [ -n "$kernel" ]; then cp "$kernel" "$tree/images/pxeboot/vmlinuz"; else head -c 8M /dev/urandom > "$tree/images/pxeboot/vmlinuz"; fi
  head -c 64M /dev/urandom > "$tree/images/pxeboot/initrd.img"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$tree/isolinux/"
  printf 'default linux\nlabel linux\n  kernel /images/pxeboot/vmlinuz\n  append initrd=/images/pxeboot/initrd.img inst.stage2=%s quiet\n' "$LABEL" > "$tree/isolinux/isolinux.cfg"
  printf "search --no-floppy --set=root -l '%s'\nmenuentry 'Install' {\n  linuxefi /images/pxeboot/vmlinuz inst.stage2=%s quiet\n  initrdefi /images/pxeboot/initrd.img\n}\n" "$VOLID" "$LABEL" > "$tree/EFI/BOOT/grub.cfg"
  mkfs.vfat -C "$tree/images/efiboot.img" 8192 >/dev/null
  MTOOLS_SKIP_CHECK=1 mmd -i "$tree/images/efiboot.img" ::/EFI ::/EFI/BOOT
  MTOOLS_SKIP_CHECK=1 mcopy -i "$tree/images/efiboot.img" "$tree/EFI/BOOT/grub.cfg" ::/EFI/BOOT/
  left=$FIXTURE_MB; n=0
  while [ "$left" -gt 0 ]; do
    chunk=$(( left < 256 ? left : 256 ))
    head -c "${chunk}M" /dev/urandom > "$tree/data/pad$n.bin"
    left=$(( left - chunk )); n=$(( n + 1 ))
  done
  # lorax's mkisofs arguments (x86 template).
  xorriso -as mkisofs -o "$IN.tmp" -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e images/efiboot.img -no-emul-boot \
    -isohybrid-gpt-basdat -R -J -V "$VOLID" -graft-points "$tree" >/dev/null 2>&1
  mv "$IN.tmp" "$IN"
  rm -rf "$tree"
fi
SIZE=$(stat -c %s "$IN")
echo "fixture: $IN ($SIZE bytes)"

WORK=$(mktemp -d "$BASE/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/out.iso"
# mkksiso extracts and edits the configurations (and, mounted as root, efiboot.img) before
# xorriso runs; done here outside the timing, with mtools for the FAT image.
ADD="$ARGS inst.ks=$LABEL:/mykickstart.ks"
for f in isolinux/isolinux.cfg EFI/BOOT/grub.cfg images/efiboot.img; do
  xorriso -osirrox on -indev "$IN" -extract "/$f" "$WORK/$(basename "$f")" >/dev/null 2>&1
  chmod u+w "$WORK/$(basename "$f")"
done
sed -i "s|^\(\s*append .*\)$|\1 $ADD|" "$WORK/isolinux.cfg"
sed -i "s|^\(\s*linuxefi .*\)$|\1 $ADD|" "$WORK/grub.cfg"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$WORK/efiboot.img" "$WORK/grub.cfg" ::/EFI/BOOT/grub.cfg
MAPS="-map $KS /mykickstart.ks -map $WORK/isolinux.cfg /isolinux/isolinux.cfg -map $WORK/grub.cfg /EFI/BOOT/grub.cfg -map $WORK/efiboot.img /images/efiboot.img"

declare -A CMD
CMD[basalt]="$BASALT iso remaster $IN $OUT --ks $KS -c '$ARGS' >/dev/null"
CMD[xorriso]="xorriso -indev $IN -outdev $OUT $MAPS -boot_image any replay >/dev/null 2>&1 && implantisomd5 $OUT >/dev/null"
CMD[cp+implant]="cp $IN $OUT && implantisomd5 $OUT >/dev/null"
CMD[cp]="cp $IN $OUT"
CMD[md5sum]="md5sum $IN >/dev/null"
ORDER=(basalt xorriso cp+implant cp md5sum)

echo "commands (each timed as: sh -c 'COMMAND && sync'):"
for k in "${ORDER[@]}"; do echo "  $k: ${CMD[$k]}"; done

declare -A TIMES
run_one() {
  local k=$1
  rm -f "$OUT"; sync
  local t
  if ! t=$( { $TIME -f '%e' sh -c "${CMD[$k]} && sync" 2>&1 1>/dev/null; } | tail -1); then
    echo "iso-remaster: $k failed: ${CMD[$k]}" >&2; exit 1
  fi
  TIMES[$k]="${TIMES[$k]:-} $t"
  printf '  %-11s %6.2f s\n' "$k" "$t"
}

for ((r = 0; r < ROUNDS; r++)); do
  echo "round $((r + 1))"
  for ((i = 0; i < ${#ORDER[@]}; i++)); do run_one "${ORDER[$(( (i + r) % ${#ORDER[@]} ))]}"; done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A MED
for k in "${ORDER[@]}"; do MED[$k]=$(echo "${TIMES[$k]}" | median); done
stretch=$(awk -v a="${MED[cp]}" -v b="${MED[md5sum]}" 'BEGIN {print (a > b ? a : b)}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# Check basalt's output once more, outside the timing.
rm -f "$OUT"; eval "${CMD[basalt]}"
checkisomd5 "$OUT" >/dev/null && md5ok=pass || md5ok=FAIL
xorriso -osirrox on -indev "$OUT" -extract /mykickstart.ks "$WORK/ks.out" >/dev/null 2>&1 && cmp -s "$WORK/ks.out" "$KS" && ksok=pass || ksok=FAIL

echo
echo "| contender | median s (of $ROUNDS) |"
echo "|---|---|"
for k in "${ORDER[@]}"; do echo "| $k | ${MED[$k]} |"; done
echo
echo "basalt / (a) xorriso+implantisomd5: $(ratio "${MED[basalt]}" "${MED[xorriso]}")x"
echo "basalt / (b) cp+implantisomd5:      $(ratio "${MED[basalt]}" "${MED[cp+implant]}")x   (target <= 1.00)"
echo "basalt / max(cp, md5sum):           $(ratio "${MED[basalt]}" "$stretch")x   (stretch <= 1.00)"
echo "basalt output: checkisomd5 $md5ok, kickstart via xorriso $ksok"
[ "$md5ok" = pass ] && [ "$ksok" = pass ] || exit 1
if [ "$STRICT" = 1 ] && awk -v a="${MED[basalt]}" -v b="${MED[cp+implant]}" 'BEGIN {exit !(a > b)}'; then exit 1; fi
