#!/usr/bin/env bash
# The cpu-profile study of the book, in priority order; every step skips finished runs,
# so run it again after an interruption and it carries on. Needs HC18 and, offline, a
# local copy of the ImageNet MobileNetV2 weights. Keep the checkpoints outside the work
# tree, so that a fresh clone on the same machine still resumes an interrupted run:
#   FETALFT_DATA_DIR=../shared/hc18 \
#   FETALFT_ENCODER_WEIGHTS=../shared/weights/mobilenet_v2_imagenet_tflite_quant_dequant_torchvision.pth \
#   FETALFT_CHECKPOINT_DIR=~/fetalft-checkpoints \
#   bash scripts/cpu_study.sh
set -euo pipefail
study() { python -m fetalft study --profile cpu --quiet "$@"; }

# Cheapest first within a seed, so a half-finished seed still fills most of the table.
fine_tuned="decoder-0-4 decoder-4 decoder-2-4 decoder-0 decoder-0-1 decoder-0-2 encoder random-decoder-0-4 random-encoder"
partial="decoder-0 decoder-0-1 decoder-0-2 decoder-2-4 decoder-4"

study --strategies $fine_tuned baseline --seeds 0                      # the paper's table, seed 0
study --strategies decoder-0-4 --seeds 0 --split leaky                 # what the leak is worth
# Three seeds in all: the short fine-tuned runs of seeds 1-2 first, so that a session which
# ends mid-study (or a machine that is not handed back) loses at most one short run.
study --strategies $fine_tuned --seeds 1 2
study --strategies baseline --seeds 1 2                                # 47-81 min each
for fraction in 0.1 0.3 0.5; do                                        # data efficiency, cheap half
  study --strategies decoder-0-4 --seeds 0 --train-fraction "$fraction"
done
study --strategies $partial --seeds 0 --head-trainable                 # the head policy
study --strategies decoder-0-4 --seeds 1 2 --split leaky               # the leak, three seeds
# Three seeds for the cheap extras (about 1 h in all), then the last baselines.
for fraction in 0.1 0.3 0.5; do
  study --strategies decoder-0-4 --seeds 1 2 --train-fraction "$fraction"
done
study --strategies $partial --seeds 1 2 --head-trainable
study --strategies baseline --seeds 0 --split leaky                    # 65-80 min each
for fraction in 0.1 0.3 0.5; do                                        # data efficiency, baseline half
  study --strategies baseline --seeds 0 --train-fraction "$fraction"
done
