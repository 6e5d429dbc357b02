#!/usr/bin/env bash
# The README's first Quick start command: sets up a fresh Debian 12 machine and runs the main job, in about
# 5–8 minutes on 2 CPU cores.
#   1. installs the Fashion-MNIST data set (Debian package dataset-fashion-mnist) if it is missing;
#   2. builds the ddpm command line (Release);
#   3. samples 64 images from the shipped model (models/fashion-mnist, the default sampler: DDPM, 100 steps)
#      -> out/quickstart/shipped/grid.png;
#   4. samples one row of each class from the class-conditional model (models/fashion-mnist-cond, classifier-free
#      guidance w = 3, DDIM 20 steps) -> out/quickstart/classes/grid.png;
#   5. trains a small model on Fashion-MNIST for a short budget -> out/quickstart/run, and samples from it;
#   6. runs the 2-D toy demo with the exact (oracle) denoiser -> out/quickstart/toy/toy-samples.png.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=out/quickstart
steps=${QUICKSTART_TRAIN_STEPS:-300}

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "quickstart: installing dataset-fashion-mnist"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends dataset-fashion-mnist
fi

echo "quickstart: building"
dotnet build -c Release src/Ddpm.Cli -v quiet -nologo
ddpm() { ./ddpm "$@"; }

echo "quickstart: sampling 64 images from the shipped model"
ddpm sample --checkpoint models/fashion-mnist --sampler ddpm --steps 100 --n 64 --batch 64 --seed 0 --out "$out/shipped"

echo "quickstart: 8 images of each class with classifier-free guidance"
ddpm sample --checkpoint models/fashion-mnist-cond --class all --n 8 --guidance-scale 3 --sampler ddim --steps 20 --seed 0 --out "$out/classes"

echo "quickstart: training a small model for $steps steps"
rm -rf "$out/run"
ddpm train --dataset fashion-mnist --preset fashion-mnist --steps "$steps" --batch 32 --lr 1e-3 --warmup 50 \
  --ema 0.99 --checkpoint-every "$steps" --log-every 25 --out "$out/run"
ddpm sample --checkpoint "$out/run" --sampler ddim --steps 20 --n 16 --batch 16 --seed 0 --out "$out/run-samples"
ddpm plot loss --log "$out/run" --out "$out/run/loss.png"

echo "quickstart: toy demo"
ddpm demo toy --out "$out/toy"

echo "quickstart: done. Look at $out/shipped/grid.png, $out/classes/grid.png, $out/run-samples/grid.png, $out/run/loss.png and $out/toy/toy-samples.png"
