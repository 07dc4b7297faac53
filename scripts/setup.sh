#!/usr/bin/env bash
# One-time setup on a fresh machine: system packages (PyTorch for the trainer, OpenBLAS, pytest,
# Chromium for the browser tests, Redis and PostgreSQL for the distributed mode's tests), npm dependencies,
# an S3-compatible test server (moto), and the converted encoder in the model cache.
# Redis and PostgreSQL are only installed here: the tests start their own instances on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-torch libopenblas0-pthread python3-numpy python3-pytest python3-optuna python3-pil wordnet-base maven chromium redis-server postgresql)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pgvector (semantic library search on PostgreSQL) is not packaged for this Debian: built from its source, fetched
# from the Go module proxy (the tagged release as a zip), against the server's headers. Skipped once installed.
PGVECTOR_VERSION=0.8.0
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
pg_sharedir() { if [ -x "$PG_CONFIG" ]; then "$PG_CONFIG" --sharedir; else echo /usr/share/postgresql/15; fi; }
if [ ! -f "$(pg_sharedir)/extension/vector.control" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! dpkg -s postgresql-server-dev-15 >/dev/null 2>&1; then
    echo "setup: installing postgresql-server-dev-15 (to build pgvector)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-server-dev-15 build-essential unzip >/dev/null
  fi
  echo "setup: building pgvector $PGVECTOR_VERSION"
  build=$(mktemp -d)
  curl -fsSL -o "$build/pgvector.zip" "https://proxy.golang.org/github.com/pgvector/pgvector/@v/v$PGVECTOR_VERSION.zip"
  unzip -q "$build/pgvector.zip" -d "$build"
  src="$build/github.com/pgvector/pgvector@v$PGVECTOR_VERSION"
  # OPTFLAGS="": no -march=native, so the library runs on any x86-64 machine it is copied to.
  make -s -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
  $SUDO make -s -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >/dev/null
  rm -rf "$build"
fi

# The COCO caption toolkit: its METEOR 1.5 jar (Java) gives exact METEOR; without it a native approximation is used.
pip_install() { python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"; }
python3 -c "import pycocoevalcap" 2>/dev/null || pip_install pycocoevalcap
# S3 inputs of batch jobs are tested against moto's S3-compatible server.
command -v moto_server >/dev/null 2>&1 || pip_install 'moto[server]'
# SPICE (score/eval --spice): CoreNLP 3.6.0 + Nashorn via Maven into the user's cache; a no-op once done.
bash scripts/fetch-spice.sh

npm ci --no-audit --no-fund
# Convert ResNet50 once (a no-op when the cache is valid).
node bin/pixel-info.js encoder >/dev/null
echo "setup: done"
