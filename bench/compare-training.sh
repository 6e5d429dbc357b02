#!/usr/bin/env bash
# Side-by-side training throughput, in one run, alternating so that the machine's drift hits every contender alike:
#   ddpm train --precision fp32 | ddpm train --precision bf16 | PyTorch 1.13 fp32 | PyTorch 1.13 bf16 autocast
# Each contender trains the same U-Net with the same step (bench/peer_pytorch.py), ROUNDS times, STEPS steps at BATCH.
# The trainer's figure is its own log.jsonl images/s after the first log interval (warm-up). Run it alone on an idle
# machine; it prints one line per run and a summary with the medians and their ratios.
#   PRESET=fashion-mnist BATCH=128 STEPS=50 ROUNDS=2 bash bench/compare-training.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
preset="${PRESET:-fashion-mnist}" batch="${BATCH:-128}" steps="${STEPS:-50}" rounds="${ROUNDS:-2}"
python="${PYTHON:-/usr/bin/python3}"
dataset="${DATASET:-fashion-mnist}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ddpm-compare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$root/ddpm" --help >/dev/null   # build first, outside the timings
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "compare-training: $python has no torch; apt-get install python3-torch (or set PYTHON)" >&2
  exit 1
fi
declare -A results
trainer() {   # precision -> images/s
  local run="$work/run-$1-$RANDOM"
  "$root/ddpm" train --dataset "$dataset" --preset "$preset" --batch "$batch" --steps "$steps" --log-every 10 \
    --checkpoint-every 1000000 --keep 1 --precision "$1" --out "$run" >/dev/null
  # mean of the log intervals after the first (the first holds the allocator's and oneDNN's warm-up)
  "$python" -c 'import json,sys; r=[json.loads(l)["images_per_second"] for l in open(sys.argv[1])][1:]; print(sum(r)/len(r))' "$run/log.jsonl"
  rm -rf "$run"
}
peer() {      # extra flag -> images/s
  "$python" "$root/bench/peer_pytorch.py" --preset "$preset" --batch "$batch" --steps "$((steps - 10))" --warmup 10 $1 \
    | "$python" -c 'import json,sys; print(json.loads(sys.stdin.read())["train_images_per_s"])'
}
for round in $(seq 1 "$rounds"); do
  for who in ddpm-fp32 ddpm-bf16 pytorch-fp32 pytorch-bf16; do
    case "$who" in
      ddpm-fp32) v="$(trainer fp32)" ;;
      ddpm-bf16) v="$(trainer bf16)" ;;
      pytorch-fp32) v="$(peer "")" ;;
      pytorch-bf16) v="$(peer --bf16)" ;;
    esac
    results[$who]+="$v "
    printf 'round %d  %-13s %7.1f img/s\n' "$round" "$who" "$v"
  done
done
"$python" - "${results[ddpm-fp32]}" "${results[ddpm-bf16]}" "${results[pytorch-fp32]}" "${results[pytorch-bf16]}" "$preset" "$batch" <<'PY'
import statistics, sys
names = ["ddpm-fp32", "ddpm-bf16", "pytorch-fp32", "pytorch-bf16"]
med = {n: statistics.median(float(v) for v in s.split()) for n, s in zip(names, sys.argv[1:5])}
print(f"preset {sys.argv[5]}, batch {sys.argv[6]}: medians " + ", ".join(f"{n} {v:.1f}" for n, v in med.items()) + " img/s")
print(f"ddpm bf16 / ddpm fp32: {med['ddpm-bf16'] / med['ddpm-fp32']:.2f}x; ddpm bf16 / pytorch fp32: {med['ddpm-bf16'] / med['pytorch-fp32']:.2f}x; "
      f"ddpm bf16 / pytorch bf16: {med['ddpm-bf16'] / med['pytorch-bf16']:.2f}x; ddpm fp32 / pytorch fp32: {med['ddpm-fp32'] / med['pytorch-fp32']:.2f}x")
PY
