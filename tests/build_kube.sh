#!/usr/bin/env bash
# Rebuild kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's own
# source package (../shared/docs/test-rig.md), for machines without ../shared/k8s.
# Usage: tests/build_kube.sh OUT_DIR   (about 8 minutes and 1.4 GB of memory on 2 cores)
set -euo pipefail
OUT=${1:?usage: build_kube.sh OUT_DIR}
VERSION=1.20.5+really1.20.2-1.1+deb12u1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
command -v go >/dev/null && command -v rsync >/dev/null || apt-get install -y -q golang-go rsync dpkg-dev
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
(cd "$WORK/src" && env -u GOFLAGS GOPROXY=off CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager")
mkdir -p "$OUT"
cp "$WORK"/src/_output/local/bin/linux/amd64/kube-apiserver "$WORK"/src/_output/local/bin/linux/amd64/kube-controller-manager "$OUT"/ 2>/dev/null \
  || cp "$WORK"/src/_output/bin/kube-apiserver "$WORK"/src/_output/bin/kube-controller-manager "$OUT"/
"$OUT/kube-apiserver" --version
