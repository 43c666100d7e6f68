#!/usr/bin/env bash
# Installs the Debian packages cadre needs that are missing. Idempotent and
# quiet when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev nlohmann-json3-dev librocksdb-dev liblua5.4-dev libjemalloc-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libvalijson-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tools: OCR, PDF, HTTP client and test servers, SQL
  libtesseract-dev libleptonica-dev tesseract-ocr-eng libpoppler-cpp-dev
  libcurl4-openssl-dev libcpp-httplib-dev libsqlite3-dev libpq-dev
  libxml2-dev zlib1g-dev
  # cadre serve: token hashes and JWTs
  libssl-dev libjwt-dev openssl
  # tests of the tools: rendered images, a PostgreSQL server, the JSON
  # Schema test suite
  imagemagick fonts-dejavu-core postgresql json-schema-test-suite
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]} (run as root to install)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
