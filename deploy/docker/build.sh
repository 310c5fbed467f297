#!/usr/bin/env bash
# Builds every service's image (services/*/Dockerfile) with buildah, from the repository root.
#   PYTHON_IMAGE=...   the base (default: the Dockerfiles' own, python:3.11.13-slim-bookworm)
#   SERVICES="gateway render"   only these
#   BUILD_CA=/path/ca.pem       a CA bundle that RUN steps trust (a TLS-inspecting proxy)
# No Docker engine needed; `docker build -f services/<name>/Dockerfile .` does the same.
set -euo pipefail
cd "$(dirname "$0")/../.."
storage=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
args=(--layers --network host --isolation "${BUILDAH_ISOLATION:-chroot}")
[ -n "${PYTHON_IMAGE:-}" ] && args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
if [ -n "${BUILD_CA:-}" ]; then
  args+=(--volume "$BUILD_CA:/etc/ssl/certs/ca-certificates.crt:ro")
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
for service in ${SERVICES:-gateway progress script assets render upload}; do
  echo "== ytmaker/$service:$version"
  buildah "${storage[@]}" bud "${args[@]}" -f "services/$service/Dockerfile" \
    -t "ytmaker/$service:$version" .
done
