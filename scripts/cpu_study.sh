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
# Strategies with frozen layers that were never trained (random initialisation).
random_frozen="decoder-0 decoder-0-1 decoder-0-2 encoder random-encoder decoder-2-4 decoder-4 random-decoder-0-4"

# The paper's table, three seeds. The short fine-tuned runs of seeds 1-2 come before the
# baselines, so that a session which ends mid-study loses at most one short run.
study --strategies $fine_tuned baseline --seeds 0
study --strategies $fine_tuned --seeds 1 2
study --strategies baseline --seeds 1 2                                # 47-81 min each

# Chapter 7's gap table: what the leak is worth, then frozen random layers whose BatchNorm
# normalises each batch, as in the authors' code.
study --strategies decoder-0-4 --seeds 0 1 2 --split leaky
study --strategies $random_frozen --seeds 0 --random-bn train
study --strategies $random_frozen --seeds 1 2 --random-bn train

# Data efficiency (the cheap half).
for fraction in 0.1 0.3 0.5; do
  study --strategies decoder-0-4 --seeds 0 1 2 --train-fraction "$fraction"
done

# The head policy: the partial strategies with a trainable head, and the whole-decoder
# strategies with the head frozen at random initialisation (fetalft's first registry).
study --strategies $partial --seeds 0 1 2 --head-trainable
study --strategies decoder-0-4 random-decoder-0-4 --seeds 0 1 2 --frozen-head
study --strategies decoder-0-4 --seeds 0 1 2 --split leaky --frozen-head
for fraction in 0.1 0.3 0.5; do
  study --strategies decoder-0-4 --seeds 0 1 2 --train-fraction "$fraction" --frozen-head
done

# The baseline's leak and data efficiency (65-80 min each on the leaky split).
study --strategies baseline --seeds 0 --split leaky
for fraction in 0.1 0.3 0.5; do
  study --strategies baseline --seeds 0 --train-fraction "$fraction"
done
