#!/usr/bin/env bash
# The figures of BENCHMARKS.md that depend on the CPU, on this CPU as it is and capped at AVX2 (as most laptops:
# latentatlas.hardware.AVX2_ONLY), one after the other; JSON per figure under benchmarks/results/<host>-<date>/.
# Run it on a quiet machine (nothing else training): every figure is a ratio taken within one process or one script.
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
out=benchmarks/results/$(hostname)-$(date +%Y%m%d-%H%M)
mkdir -p "$out"
B=.venv/bin
for kind in native avx2; do
  if [ "$kind" = avx2 ]; then
    export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
  fi
  echo "== $kind: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  $B/latentatlas bench --data fashion-mnist --preset deep-2d --preset deep-s2 --epochs 10 --json "$out/bench-$kind.json"
  $B/latentatlas bench --to-quality --data fashion-mnist --preset deep-2d --json "$out/quality-$kind.json"
  $B/python benchmarks/roofline.py --json "$out/roofline-$kind.json"
  $B/python benchmarks/graph.py --int8-samples 10000 --json "$out/graph-$kind.json"
  rm -rf "$out/compare-$kind" "$out/train-$kind"
  start=$(date +%s.%N)
  $B/latentatlas train --preset deep-2d --data fashion-mnist --out "$out/train-$kind" >/dev/null
  mid=$(date +%s.%N)
  $B/latentatlas compare --presets deep-2d --seeds 4 --data fashion-mnist --baselines '' --out "$out/compare-$kind" >/dev/null
  end=$(date +%s.%N)
  python3 -c "t=$mid-$start; c=$end-$mid; print(f'compare --seeds 4: {c:.1f} s, one train: {t:.1f} s, ratio {c/t:.2f}x')" \
    | tee "$out/compare-vs-train-$kind.txt"
  rm -rf "$out/compare-$kind" "$out/train-$kind"
done
