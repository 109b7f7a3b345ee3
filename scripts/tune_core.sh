#!/usr/bin/env bash
# A sweep of fit()/preset defaults on the 28×28 warped-digits proxy, epoch budgets (device-agnostic).
set -u
cd "$(dirname "$0")/.."
B="python3 benchmarks/reconstruction.py --n-train 60000 --latent-dim 30"
for ep in 30 60; do
  $B --presets deep --epochs $ep 2>&1 | tail -1 | sed "s/^/ep=$ep mse lr=2e-3 bs128 /"
  $B --presets deep --epochs $ep --option loss='"bce"' 2>&1 | tail -1 | sed "s/^/ep=$ep bce /"
  $B --presets deep --epochs $ep --lr 1e-3 2>&1 | tail -1 | sed "s/^/ep=$ep lr=1e-3 /"
  $B --presets deep --epochs $ep --batch-size 64 2>&1 | tail -1 | sed "s/^/ep=$ep bs64 /"
  $B --presets deep --epochs $ep --option 'arch_options={"hidden":[1000,500,250],"act":"relu"}' 2>&1 | tail -1 | sed "s/^/ep=$ep relu /"
done
$B --presets conv --epochs 10 2>&1 | tail -1 | sed "s/^/ep=10 conv /"
$B --presets deep --epochs 5 2>&1 | tail -4
