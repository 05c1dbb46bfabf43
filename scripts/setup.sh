#!/usr/bin/env bash
# Installs everything lorabuild needs on a fresh Debian machine: the Python worker's torch (CPU,
# with OpenBLAS: without it matmuls run ~30x slower), onnx for test fixtures, Chromium for the
# report screenshot test, nginx (the remote-cache tests' WebDAV server), Slurm and munge (the
# cluster tests' single-node Slurm; scripts/services/ starts them on 127.0.0.1 when a test needs
# them), then the npm packages from the lock (npm ci also builds the TypeScript and the CLI's
# bundle: the `prepare` script), then puts `lorabuild` on the PATH (scripts/link-bin.sh) and says
# where.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
PKGS="python3 python3-torch python3-numpy python3-pil python3-yaml libopenblas0-pthread python3-onnx zstd chromium fonts-dejavu-core nginx slurm-wlm munge"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
/usr/bin/python3 -c 'import torch, numpy, PIL' || { echo "setup: /usr/bin/python3 cannot import torch" >&2; exit 1; }
echo "setup: npm ci (and tsc)"
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
[ -f dist/cli/main.js ] || npm run build
bash scripts/link-bin.sh
echo "setup: done"
