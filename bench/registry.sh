# Sourced helper (bash): starts Debian's docker-registry (Docker Distribution 2.8) on a free
# loopback port with a temporary storage directory, and stops it (by its own PID) on exit.
#
#   source bench/registry.sh
#   registry_start            # sets REGISTRY_HOST (127.0.0.1:PORT), REGISTRY_PID, REGISTRY_DIR
#   ...
#   registry_stop             # also run automatically from the EXIT trap
#
# Standalone: `bench/registry.sh` starts one, prints its address and serves until Ctrl-C.

REGISTRY_BIN="${REGISTRY_BIN:-/usr/bin/docker-registry}"

_registry_free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

registry_start() {
  REGISTRY_DIR=$(mktemp -d /tmp/basalt-bench-registry.XXXXXX)
  local port; port=$(_registry_free_port)
  REGISTRY_HOST="127.0.0.1:$port"
  mkdir -p "$REGISTRY_DIR/storage"
  cat > "$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_HOST
EOF
  "$REGISTRY_BIN" serve "$REGISTRY_DIR/config.yml" > "$REGISTRY_DIR/registry.log" 2>&1 &
  REGISTRY_PID=$!
  trap registry_stop EXIT
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://$REGISTRY_HOST/v2/" 2>/dev/null; then
      export REGISTRY_HOST REGISTRY_PID REGISTRY_DIR
      return 0
    fi
    if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "registry: failed to start; log:" >&2
  cat "$REGISTRY_DIR/registry.log" >&2
  return 1
}

registry_stop() {
  if [ -n "${REGISTRY_PID:-}" ] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  REGISTRY_PID=
  if [ -n "${REGISTRY_DIR:-}" ] && [ -z "${KEEP_REGISTRY_DIR:-}" ]; then
    rm -rf "$REGISTRY_DIR"
  fi
  REGISTRY_DIR=
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  registry_start
  echo "registry: serving at $REGISTRY_HOST (pid $REGISTRY_PID, storage $REGISTRY_DIR/storage); Ctrl-C to stop"
  wait "$REGISTRY_PID"
fi
