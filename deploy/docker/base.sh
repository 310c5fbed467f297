#!/usr/bin/env bash
# Makes a Python base image from Debian's own packages, for building ytmaker's images where no
# image registry is reachable (docs/decisions/0073): debootstrap bookworm (minbase, python3,
# python3-venv, CA certificates) into a directory, then buildah commits it as
# localhost/ytmaker-python:bookworm. Needs root, debootstrap and buildah.
#   deploy/docker/base.sh [workdir]          then: PYTHON_IMAGE=localhost/ytmaker-python:bookworm deploy/docker/build.sh
set -euo pipefail
work=${1:-/var/tmp/ytmaker-base}
storage=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
if [ ! -x "$work/rootfs/usr/bin/python3" ]; then
  rm -rf "$work/rootfs"
  mkdir -p "$work"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$work/rootfs"
fi
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
ctr=$(buildah "${storage[@]}" from scratch)
trap 'buildah "${storage[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$(buildah "${storage[@]}" mount "$ctr")
cp -a "$work/rootfs/." "$mnt/"
buildah "${storage[@]}" umount "$ctr" >/dev/null
buildah "${storage[@]}" config --env LANG=C.UTF-8 --cmd '["python3"]' "$ctr"
buildah "${storage[@]}" commit --quiet "$ctr" localhost/ytmaker-python:bookworm
echo "built localhost/ytmaker-python:bookworm"
