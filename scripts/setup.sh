#!/usr/bin/env bash
# One-time setup on a fresh machine: system packages (PyTorch for the trainer, OpenBLAS, pytest,
# Chromium for the browser tests), npm dependencies, and the converted encoder in the model cache.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-torch libopenblas0-pthread python3-numpy python3-pytest chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The COCO caption toolkit: its METEOR 1.5 jar (Java) gives exact METEOR; without it a native approximation is used.
python3 -c "import pycocoevalcap" 2>/dev/null || python3 -m pip install -q pycocoevalcap 2>/dev/null \
  || python3 -m pip install -q --break-system-packages pycocoevalcap

npm ci --no-audit --no-fund
# Convert ResNet50 once (a no-op when the cache is valid).
node bin/pixel-info.js encoder >/dev/null
echo "setup: done"
