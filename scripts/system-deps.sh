#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing (as root, with apt-get).
# Java and Maven run the local Kafka broker; PostgreSQL is the production database the tests
# also run against; Chromium drives the browser tests; espeak-ng is the fallback narrator.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
for extra in ${YTMAKER_EXTRA_APT:-}; do need+=("$extra"); done
while read -r pkg cmd; do
  [ -n "$pkg" ] && ! command -v "$cmd" >/dev/null && need+=("$pkg")
done < <(grep -v '^#' "$(dirname "$0")/apt-packages.txt" 2>/dev/null || true)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (install them with apt-get, as root)" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
