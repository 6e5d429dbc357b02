#!/usr/bin/env bash
# Reproduces the evaluation tables of docs/results.md for a trained Fashion-MNIST model: FID for each sampler and
# number of steps (issue 5's DDPM/DDIM table, issue 6's FID against network calls), FID(train vs test) as the floor,
# and bits/dim on the test split. Every row is one `ddpm eval` command; its JSON report goes to $OUT.
#
#   scripts/evaluate.sh                     # the sample counts used in docs/results.md
#   N=10000 N_DDPM=10000 scripts/evaluate.sh  # the paper's protocol (hours of CPU per 1000-step row)
#   N=500 CALLS="5 10 20 50" N_DDPM=0 N_NLL=0 N_STRATA=500 STRATA=20 scripts/evaluate.sh   # what fit in docs/results.md
#
# N_DDPM=0 skips the 1000-step rows and N_NLL=0 the full 1000-term bound; rows already in $OUT are not redone.
#
# FID here uses our own classifier's features (models/fid-fashion-mnist), not Inception: compare only with itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model=${MODEL:-models/fashion-mnist}
net=${FID_NET:-models/fid-fashion-mnist}
out=${OUT:-docs/eval}
n=${N:-1000}            # samples per FID row with few steps
n_ddpm=${N_DDPM:-200}   # samples per 1000-step DDPM row
n_nll=${N_NLL:-100}     # test images for the full 1000-term bound
n_strata=${N_STRATA:-1000}
strata=${STRATA:-50}     # timesteps per image of the stratified bound
calls_list=${CALLS:-"5 10 20 50 100 1000"}
ddpm() { ./ddpm "$@"; }
mkdir -p "$out" docs/images

[ -d "$net" ] || ddpm fid-net train --dataset fashion-mnist --out "$net"
fid() { local name=$1; shift; [ -f "$out/$name.json" ] || ddpm eval fid --fid-net "$net" --out "$out/$name.json" "$@"; }

fid floor-train-vs-test --real train --dataset fashion-mnist --n "$n"
# FID against network calls (issue 6): cheap rows first, so an interrupted run still fills the left of the plot.
for calls in $calls_list; do
  count=$n; [ "$calls" -ge 1000 ] && count=$n_ddpm
  [ "$count" -gt 0 ] || continue
  fid "ddim-$calls" --checkpoint "$model" --sampler ddim --steps "$calls" --n "$count"
  fid "dpmpp2m-$calls" --checkpoint "$model" --sampler dpm++2m --steps "$calls" --n "$count"
  fid "heun-$calls" --checkpoint "$model" --sampler heun --steps $(( (calls + 1) / 2 )) --n "$count"
  fid "ddpm-$calls" --checkpoint "$model" --sampler ddpm --steps "$calls" --n "$count"
done
# The DDIM paper's Table 1 rows (issue 5): η = 1 at 50 steps, DDPM over all 1000 steps with both fixed variances.
fid ddim-50-eta1 --checkpoint "$model" --sampler ddim --steps 50 --eta 1 --n "$n"
if [ "$n_ddpm" -gt 0 ]; then
  fid ddpm-1000-fixed-large --checkpoint "$model" --sampler ddpm --steps 1000 --variance fixed-large --n "$n_ddpm"
  # The 1000-call rows' yardsticks: the same seed's first N_DDPM samples of two cheap samplers (FID's bias depends on N).
  mkdir -p "$out/n$n_ddpm"
  fid "n$n_ddpm/ddpm-100" --checkpoint "$model" --sampler ddpm --steps 100 --n "$n_ddpm"
  fid "n$n_ddpm/dpmpp2m-20" --checkpoint "$model" --sampler dpm++2m --steps 20 --n "$n_ddpm"
fi

nll() { local name=$1; shift; [ -f "$out/$name.json" ] || ddpm eval nll --checkpoint "$model" --dataset fashion-mnist --split test --out "$out/$name.json" "$@"; }
for v in fixed-small fixed-large; do
  [ "$n_nll" -eq 0 ] || nll "nll-full-$v" --n "$n_nll" --variance "$v"
  nll "nll-strata$strata-$v" --n "$n_strata" --strata "$strata" --variance "$v"
done

ddpm plot fid --reports "$out" --out docs/images/fid-vs-nfe.png
