#!/usr/bin/env bash
# Builds the benchmark fixture image locally with podman: a Debian bookworm image with real
# packages, about 700 MB unpacked, in several layers:
#   layer 1: minbase root filesystem from mmdebstrap, imported with `podman import`
#   layer 2: python3 + perl + common libraries
#   layer 3: build-essential (gcc, g++, make, libc6-dev, ...)
#   layer 4: git, vim, gdb, libicu and other everyday tools
# (about 700 MB unpacked, about 300 MB of gzip layers)
# Tag: localhost/basalt-bench/debian:fixture (override with FIXTURE_IMAGE).
# Idempotent: does nothing but print the sizes when the image already exists.
# Nothing is pulled from an internet registry; apt inside the build reaches Debian's mirror.
set -euo pipefail

IMAGE="${FIXTURE_IMAGE:-localhost/basalt-bench/debian:fixture}"
BASE="${IMAGE%:*}:base"

[ "$(id -u)" = 0 ] || { echo "fixture-debian: run as root (podman storage, apt)" >&2; exit 2; }

# podman on this machine kind needs runc + cgroupfs (see ../shared/ENVIRONMENT.md,
# scripts/setup). Only written when absent, never overwritten.
if [ ! -e /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
# Written by basalt's bench/fixture-debian.sh (same content as scripts/setup) for hybrid cgroups.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi

print_sizes() {
  local layers unpacked compressed
  layers=$(podman image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")
  unpacked=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  echo "fixture: $IMAGE"
  echo "  layers:            $layers"
  echo "  unpacked size:     $((unpacked / 1000000)) MB ($unpacked bytes)"
  # Compressed size: the gzip layers skopeo would push (measured by a copy to a scratch
  # OCI layout; cached next to nothing, so it takes ~30-60 s the first time).
  if [ "${FIXTURE_COMPRESSED:-1}" = 1 ]; then
    local tmp; tmp=$(mktemp -d)
    skopeo copy -q "containers-storage:$IMAGE" "oci:$tmp/layout:fixture" 2> >(grep -v 'graphdriver' >&2) >/dev/null
    compressed=$(du -sb "$tmp/layout/blobs" | cut -f1)
    echo "  compressed (gzip): $((compressed / 1000000)) MB ($compressed bytes, OCI layout blobs)"
    local mf; mf=$(jq -r '.manifests[0].digest' "$tmp/layout/index.json" | sed 's/sha256://')
    jq -r '.layers[] | "    layer \(.digest[7:19])  \(.size) bytes  \(.mediaType)"' "$tmp/layout/blobs/sha256/$mf"
    rm -rf "$tmp"
  fi
}

if podman image exists "$IMAGE"; then
  echo "fixture-debian: $IMAGE already exists; not rebuilding"
  print_sizes
  exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
  echo "fixture-debian: installing mmdebstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$BASE"; then
  echo "fixture-debian: mmdebstrap --variant=minbase bookworm"
  mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs.tar"
  podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
    "$work/rootfs.tar" "$BASE" >/dev/null
  rm -f "$work/rootfs.tar"
fi

cat > "$work/Containerfile" <<EOF
FROM $BASE
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      python3 python3-pip python3-venv perl libperl5.36 ca-certificates curl \\
      libssl3 libsqlite3-0 libxml2 libyaml-0-2 zlib1g \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      build-essential gcc g++ make pkg-config libc6-dev libssl-dev zlib1g-dev \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      git openssh-client vim less file xz-utils bzip2 unzip \\
      libicu72 gdb strace \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL org.opencontainers.image.title="basalt benchmark fixture (Debian bookworm)"
EOF

echo "fixture-debian: podman build (apt from Debian's mirror)"
podman build --pull=never --layers -t "$IMAGE" -f "$work/Containerfile" "$work"
print_sizes
