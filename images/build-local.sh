#!/usr/bin/env bash
# Build both images here, with no registry: a Debian bookworm base made by debootstrap and
# imported into podman (once), pip reaching the host's package index and CAs through
# bind-mounted config (only for the build's RUN steps: nothing is baked into a layer), and
# the CPU torch wheel from this machine served to the build on 127.0.0.1.
# Usage: images/build-local.sh [VERSION]   (make images-local)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-latest}
CACHE=${CTUNE_IMAGE_CACHE:-$HOME/.cache/cluster-tune-images}
# bump REV when the base recipe changes (it names the cached tarball and the image)
REV=2
BASE=localhost/ctune-base:bookworm-r$REV
WHEELS=${CTUNE_TORCH_WHEELS:-/opt/wheels}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/images/containers.conf}
mkdir -p "$CACHE"

if ! podman image exists "$BASE"; then
  if [ ! -f "$CACHE/base-r$REV.tar" ]; then
    rm -rf "$CACHE/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$CACHE/rootfs" \
      http://deb.debian.org/debian >"$CACHE/debootstrap.log"
    # as Debian's slim images: no docs, man pages or translations, now or from later apt installs
    rm -rf "$CACHE"/rootfs/var/cache/apt/archives/*.deb "$CACHE"/rootfs/var/lib/apt/lists/* \
      "$CACHE"/rootfs/usr/share/{man,info,locale}/*
    find "$CACHE/rootfs/usr/share/doc" -type f ! -name copyright -delete
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      >"$CACHE/rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
    tar -C "$CACHE/rootfs" -cf "$CACHE/base-r$REV.tar" . && rm -rf "$CACHE/rootfs"
  fi
  podman import "$CACHE/base-r$REV.tar" "$BASE" >/dev/null
fi

# a PEP 503 index of the torch wheels on this disk, on a free loopback port
INDEX=$(mktemp -d)
mkdir -p "$INDEX/simple/torch"
for whl in "$WHEELS"/torch-*.whl; do
  ln -s "$whl" "$INDEX/simple/torch/$(basename "$whl")"
  echo "<a href=\"$(basename "$whl")\">$(basename "$whl")</a>" >>"$INDEX/simple/torch/index.html"
done
# a fixed port: the index's URL is a build argument, and a new one would void the build cache
PORT=${CTUNE_TORCH_INDEX_PORT:-38111}
python3 -c "import socket; socket.socket().bind(('127.0.0.1', $PORT))" 2>/dev/null \
  || { echo "images/build-local.sh: port $PORT is taken; set CTUNE_TORCH_INDEX_PORT" >&2; exit 2; }
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$INDEX" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$INDEX"' EXIT

MOUNTS=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
for path in /etc/pip.conf /etc/xdg/pip /opt/pypi /opt/pypi-more /opt/wheels; do
  [ -e "$path" ] && MOUNTS+=(-v "$path:$path:ro")
done
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
COMMON=(--format docker --network host "${MOUNTS[@]}" --build-arg BASE_IMAGE="$BASE"
        --build-arg TORCH_INDEX_URL="http://127.0.0.1:$PORT/simple"
        --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION"
        # podman reuses a cached LABEL layer whatever its ARG values: set them on the image too
        --label org.opencontainers.image.version="$VERSION" --label org.opencontainers.image.revision="$REVISION")
# shellcheck disable=SC2086
podman build "${COMMON[@]}" ${BUILD_OPTS:-} -f images/job.Dockerfile -t "cluster-tune-job:$VERSION" .
# shellcheck disable=SC2086
podman build "${COMMON[@]}" ${BUILD_OPTS:-} -f images/controller.Dockerfile -t "cluster-tune-controller:$VERSION" .
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "cluster-tune-(job|controller):$VERSION"
