#!/usr/bin/env bash
# Rerun the numbers of BENCHMARKS.md: latentatlas's trainer vs the tutorial's plain loop, 10 epochs on
# Fashion-MNIST (60,000 images; Debian's dataset-fashion-mnist or a download), deep-2d and deep-s2.
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
.venv/bin/latentatlas bench --data fashion-mnist --preset deep-2d --preset deep-s2 --epochs 10 \
  --json benchmarks/results-$(hostname)-$(date +%Y%m%d).json "$@"
