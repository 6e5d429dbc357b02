#!/usr/bin/env bash
# Issue 16's behaviour check: SHA-256 of every file that a fixed set of commands writes, so that a refactoring can be
# shown to change nothing. Prints "HASH  RELATIVE-PATH" lines, sorted; compare with docs/behaviour-sha256.txt:
#   OMP_NUM_THREADS=1 bash scripts/behaviour-hashes.sh > /tmp/now.txt && diff <(grep -v "^#" docs/behaviour-sha256.txt) /tmp/now.txt
# Float results depend on the CPU's kernels and the thread count: compare on one machine, with OMP_NUM_THREADS=1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ddpm="$root/ddpm"
out="$(mktemp -d "${TMPDIR:-/tmp}/ddpm-hashes.XXXXXX")"
trap 'rm -rf "$out"' EXIT
"$ddpm" demo toy --seed 1 --n 500 --ddim-steps 20 --out "$out/demo-toy" >/dev/null
for sampler in ddpm ddim dpm++2m euler heun sde; do
  "$ddpm" sample --checkpoint "$root/models/fashion-mnist" --sampler "$sampler" --steps 10 --n 4 --seed 7 --precision fp32 \
    --out "$out/sample-$sampler" >/dev/null
done
"$ddpm" sample --checkpoint "$root/models/fashion-mnist-cond" --sampler ddim --steps 10 --n 4 --class 3 --guidance-scale 3 \
  --seed 7 --precision fp32 --out "$out/sample-cfg" >/dev/null
for sampler in ddpm ddim; do
  "$ddpm" sample --checkpoint "$root/models/fashion-mnist" --sampler "$sampler" --steps 10 --n 4 --class 2 \
    --classifier "$root/models/classifier-fashion-mnist" --classifier-scale 2 --seed 7 --precision fp32 --out "$out/sample-classifier-$sampler" >/dev/null
done
"$ddpm" sample --checkpoint "$root/models/fashion-mnist" --sampler ddim --steps 10 --n 4 --gif --seed 7 --precision fp32 --out "$out/sample-gif" >/dev/null
"$ddpm" sample --checkpoint "$root/models/fashion-mnist-cond" --sampler ddpm --steps 5 --n 1 --batch 3 --class all --seed 7 --precision fp32 \
  --out "$out/sample-all-classes" >/dev/null
for method in noise ddim; do
  "$ddpm" interpolate --checkpoint "$root/models/fashion-mnist" --a fashion-mnist:1 --b fashion-mnist:2 --t 40 --steps 4 --method "$method" \
    --seed 7 --out "$out/interpolate-$method.png" >/dev/null
done
"$ddpm" forward --dataset fashion-mnist --n 2 --seed 7 --out "$out/forward.png" >/dev/null
(cd "$out" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
