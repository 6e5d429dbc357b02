#!/usr/bin/env bash
# Issue 14's recipe ablation at a fixed compute budget. The configurations that share the fashion-mnist network cost the
# same per step, so they all train for STEPS steps (default 3173: 30 minutes at the 112 img/s that this machine's probe
# measured at batch 64 in bf16; the wall times are recorded in each run's log). A configuration with another network
# (the wide one) gets STEPS times its measured speed relative to the fashion-mnist network: two short probes of each,
# alternated, so that the machine's drift cancels. Then FID at N (default 1000) for DDIM-50 and DDPM-50 with the
# unplaced fraction and the class entropy. Each finished model is exported to $OUT/NAME (outside git), its reports go to
# docs/eval/ablation/, and configurations already reported are skipped, so the script resumes.
#   STEPS=3173 N=1000 ONLY="baseline min-snr-v" bash scripts/ablation.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ddpm="$root/ddpm"
steps_base="${STEPS:-3173}" n="${N:-1000}" batch="${BATCH:-64}" out="${OUT:-$root/runs/ablation}"
reports="$root/docs/eval/ablation"
mkdir -p "$out" "$reports"

# name | options on top of the common ones
configs=(
  "baseline|--schedule linear --prediction epsilon --ema 0.9995 --ema-warmup"
  "v-cosine|--schedule cosine --prediction v --ema 0.9995 --ema-warmup"
  "min-snr-eps|--schedule linear --prediction epsilon --loss-weighting min-snr --ema 0.9995 --ema-warmup"
  "min-snr-v|--schedule cosine --prediction v --loss-weighting min-snr --ema 0.9995 --ema-warmup"
  "min-snr-v-power-ema|--schedule cosine --prediction v --loss-weighting min-snr --ema-profile power --ema-std 0.1"
  "min-snr-v-power-ema-decay|--schedule cosine --prediction v --loss-weighting min-snr --ema-profile power --ema-std 0.1 --lr-decay cosine"
  "v-cosine-power-ema|--schedule cosine --prediction v --ema-profile power --ema-std 0.1"
  "v-cosine-wide48|--schedule cosine --prediction v --ema 0.9995 --ema-warmup --channels 48 --groups 48"
)
common=(--dataset fashion-mnist --preset fashion-mnist --batch "$batch" --lr 3e-4 --warmup 500 --log-every 10 --checkpoint-every 500 --keep 1 --seed 0)

rate_of() {   # mean images/s of a run's log after its first interval
  python3 -c 'import json,sys; r=[json.loads(l)["images_per_second"] for l in open(sys.argv[1])][1:]; print(sum(r)/len(r))' "$1"
}

for entry in "${configs[@]}"; do
  name="${entry%%|*}"; read -r -a extra <<< "${entry#*|}"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  if [ -f "$reports/$name-ddpm50.json" ]; then echo "ablation: $name already reported"; continue; fi
  steps="$steps_base"
  shape=(); for o in "${extra[@]}"; do case "$o" in --channels|--groups|--channel-mult|--res-blocks) shape+=("$o") ;; esac; done
  if [ "${#shape[@]}" -gt 0 ]; then
    # Relative speed of this network: 40-step probes of it and of the fashion-mnist network, alternated twice.
    ratio="$(for round in 1 2; do
      for which in base this; do
        probe="$out/probe-$which"; rm -rf "$probe"
        if [ "$which" = base ]; then "$ddpm" train "${common[@]}" --steps 40 --out "$probe" >/dev/null
        else "$ddpm" train "${common[@]}" $(printf '%s\n' "${extra[@]}" | python3 -c 'import sys; a=sys.stdin.read().split(); keep=[]; i=0
while i < len(a):
    if a[i] in ("--channels","--groups","--channel-mult","--res-blocks"): keep += a[i:i+2]; i += 2
    else: i += 1
print(" ".join(keep))') --steps 40 --out "$probe" >/dev/null; fi
        rate_of "$probe/log.jsonl"; rm -rf "$probe"
      done
    done | python3 -c 'import sys; r=[float(x) for x in sys.stdin.read().split()]; print((r[1]+r[3])/(r[0]+r[2]))')"
    steps="$(python3 -c "print(int($steps_base * $ratio))")"
    echo "ablation: $name runs at $ratio of the fashion-mnist network's speed: $steps steps"
  fi
  run="$out/run-$name"; rm -rf "$run"
  decay=(); if [[ " ${extra[*]} " == *" --lr-decay "* ]]; then decay=(--lr-decay-steps "$((steps / 5))"); fi
  "$ddpm" train "${common[@]}" "${extra[@]}" "${decay[@]}" --steps "$steps" --out "$run" | tail -n 2
  "$ddpm" export --checkpoint "$run" --out "$out/$name" --float16
  "$ddpm" plot loss --log "$run" --out "$out/$name/loss.png" --smooth 20 >/dev/null
  for sampler in ddim ddpm; do
    "$ddpm" eval fid --checkpoint "$out/$name" --fid-net "$root/models/fid-fashion-mnist" --sampler "$sampler" --steps 50 \
      --n "$n" --out "$reports/$name-${sampler}50.json" | head -n 1
  done
done

python3 - "$reports" <<'PY'
import glob, json, os, sys
rows = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*-d*50.json"))):
    name, sampler = os.path.basename(path)[:-5].rsplit("-", 1)
    rows.setdefault(name, {})[sampler] = json.load(open(path))
print("| configuration | DDIM-50 FID | DDPM-50 FID | unplaced (DDIM-50) | unplaced (DDPM-50) | class entropy (DDIM-50), bits |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    d, p = r.get("ddim50"), r.get("ddpm50")
    f = lambda x, k, fmt: format(x[k], fmt) if x and x.get(k) is not None else "-"
    print(f"| {name} | {f(d,'fid','.2f')} | {f(p,'fid','.2f')} | {f(d,'unplaced_fraction','.1%')} | {f(p,'unplaced_fraction','.1%')} | {f(d,'class_entropy_bits','.3f')} |")
PY
