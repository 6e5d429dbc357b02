#!/usr/bin/env bash
# Reproduces the guidance table of docs/results.md (issue 7): for classifier-free guidance (the class-conditional
# model) and classifier guidance (the unconditional model plus a noise-aware classifier), at a few scales, the FID of
# samples that ask for each class in turn and how often the FID network agrees with the requested class.
#
#   scripts/evaluate-guidance.sh                 # the rows of docs/results.md (500 samples each)
#   N=10000 scripts/evaluate-guidance.sh         # more samples per row
#
# The classifier is trained here when $CLASSIFIER does not exist (`ddpm classifier train`, about 20 min on one core).
# Rows whose report is already in $OUT are not redone.
#
# FID here uses our own classifier's features (models/fid-fashion-mnist), not Inception: compare only with itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

conditional=${COND_MODEL:-models/fashion-mnist-cond}
unconditional=${MODEL:-models/fashion-mnist}
classifier=${CLASSIFIER:-models/classifier-fashion-mnist}
net=${FID_NET:-models/fid-fashion-mnist}
out=${OUT:-docs/eval/guidance}
n=${N:-500}
sampler=${SAMPLER:-"--sampler ddpm --steps 50"}   # ancestral sampling, respaced: the mean-shift form of classifier guidance
cfg_scales=${CFG_SCALES:-"0 1 3"}
classifier_scales=${CLASSIFIER_SCALES:-"1 3 10 30"}
ddpm() { ./ddpm "$@"; }
mkdir -p "$out"

[ -d "$classifier" ] || ddpm classifier train --dataset fashion-mnist --out "$classifier"
fid() { local name=$1; shift; [ -f "$out/$name.json" ] || ddpm eval fid --fid-net "$net" --n "$n" --out "$out/$name.json" $sampler "$@"; }

for s in $classifier_scales; do
  fid "guidance-classifier-s$s" --checkpoint "$unconditional" --classifier "$classifier" --classifier-scale "$s"
done
for w in $cfg_scales; do
  fid "guidance-cfg-w$w" --checkpoint "$conditional" --guidance-scale "$w"
done
# The per-class grid: one row per class, classifier-free guidance w = 3 with DDIM 20 (the lowest FID of the w = 3 rows).
rm -rf out/evaluate-guidance/classes
ddpm sample --checkpoint "$conditional" --class all --n 8 --guidance-scale 3 --sampler ddim --steps 20 --seed 0 --out out/evaluate-guidance/classes
cp out/evaluate-guidance/classes/grid.png docs/images/fashion-mnist-cond-classes.png
