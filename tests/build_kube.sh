#!/usr/bin/env bash
# Rebuild kube-apiserver, kube-controller-manager, kube-scheduler and kubelet v1.20.2 from
# Debian bookworm's own source package (../shared/docs/test-rig.md), with the vendored reflect2
# 1.0.1 replaced by Debian's 1.0.2 (1.0.1 under Go >= 1.18 crashes the API server on a GET of
# an object holding a map with ?pretty=true), for machines without ../shared/k8s.
# Usage: tests/build_kube.sh OUT_DIR   (about 20 minutes and 1.4 GB of memory on 2 cores)
set -euo pipefail
OUT=${1:?usage: build_kube.sh OUT_DIR}
VERSION=1.20.5+really1.20.2-1.1+deb12u1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
command -v go >/dev/null && command -v rsync >/dev/null || apt-get install -y -q golang-go rsync dpkg-dev
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$REFLECT2" ] || apt-get install -y -q golang-github-modern-go-reflect2-dev
# a private apt configuration that adds deb-src entries for the machine's own Debian mirror
MIRROR=$(grep -rhoE 'https?://[^ ]*debian[^ ]*' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
         | grep -v security | head -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$WORK/lists/partial"
printf 'deb-src %s bookworm main\ndeb-src %s bookworm-updates main\n' "$MIRROR" "$MIRROR" > "$WORK/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$WORK/lists")
apt-get "${APT[@]}" update -q
(cd "$WORK" && apt-get "${APT[@]}" source --download-only "kubernetes=$VERSION")
(cd "$WORK" && dpkg-source -x kubernetes_*.dsc src)
cp "$REFLECT2"/*.go "$REFLECT2"/*.s "$WORK/src/vendor/github.com/modern-go/reflect2/"
BINS="kube-apiserver kube-controller-manager kube-scheduler kubelet"
(cd "$WORK/src" && env -u GOFLAGS GOPROXY=off CGO_ENABLED=0 make WHAT="$(printf 'cmd/%s ' $BINS)")
mkdir -p "$OUT"
for bin in $BINS; do
  cp "$WORK/src/_output/local/bin/linux/amd64/$bin" "$OUT/" 2>/dev/null || cp "$WORK/src/_output/bin/$bin" "$OUT/"
done
"$OUT/kube-apiserver" --version
