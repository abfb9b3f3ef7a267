#!/usr/bin/env bash
# Chapter 8's study (profile cpu-hc): the recipe's three seeds first, then one ablation run
# per change (each undoes one part of the recipe, seed 0), candidates toward the chapter's
# goal (a larger input trained longer; stronger augmentation; both; chosen on validation),
# the winner's other seeds, the encoder trained too (and its seeds), three candidates
# against that final model (a faster encoder, a larger input, longer training), then the
# from-scratch U-Net in the same profile, under the recipe and under the final model's
# settings. Every step skips finished runs, so run it again after an interruption. Needs
# the same environment as scripts/cpu_study.sh.
# Precision is fixed, so every run of the chapter is bf16 whatever the machine (the
# committed runs were; "auto" would pick fp32 on an Intel CPU without AMX).
set -euo pipefail
precision="${FETALFT_PRECISION:-bf16}"
study() { python -m fetalft study --profile cpu-hc --precision "$precision" --quiet "$@"; }

study --strategies decoder-0-4 --seeds 0 1 2
study --strategies decoder-0-4 --seeds 0 --set lr=1e-4 --set warmup_epochs=0  # the paper's schedule
study --strategies decoder-0-4 --seeds 0 --set image_size=320   # square, about as many pixels
study --strategies decoder-0-4 --seeds 0 --set loss=bce         # without the Dice loss
study --strategies decoder-0-4 --seeds 0 --frozen-head          # the head frozen at random
study --strategies decoder-0-4 --seeds 0 --set image_size=320x480 --set epochs=20  # toward the goal
study --strategies decoder-0-4 --seeds 0 --set augment=strong   # toward the goal: scale, shift, grey levels
study --strategies decoder-0-4 --seeds 0 --set image_size=320x480 --set epochs=20 --set augment=strong  # both
# both won on validation (chapter 8, "Both at once"): its other seeds, about 45 min each
study --strategies decoder-0-4 --seeds 1 2 --set image_size=320x480 --set epochs=20 --set augment=strong
# the same settings with the 4.4 M budget spent on the encoder too: a slim decoder and the
# ImageNet encoder at a tenth of the rate (chapter 8, "Training the encoder too"); it won
# on validation against "both", so all three seeds, about 50 min each
study --strategies decoder-0-4 --seeds 0 1 2 --set image_size=320x480 --set epochs=20 --set augment=strong \
    --set decoder=slim --set encoder_lr=1e-4
# the final model's encoder at three times the rate, judged on validation against it
study --strategies decoder-0-4 --seeds 0 --set image_size=320x480 --set epochs=20 --set augment=strong \
    --set decoder=slim --set encoder_lr=3e-4
# the final model at a larger input, judged on validation against it by a paired test
study --strategies decoder-0-4 --seeds 0 --set image_size=384x576 --set epochs=20 --set augment=strong \
    --set decoder=slim --set encoder_lr=1e-4
# the final model trained for 30 epochs, judged the same way
study --strategies decoder-0-4 --seeds 0 --set image_size=320x480 --set epochs=30 --set augment=strong \
    --set decoder=slim --set encoder_lr=1e-4
# the final model with a moving average of its weights validated and kept, judged the same way
study --strategies decoder-0-4 --seeds 0 --set image_size=320x480 --set epochs=20 --set augment=strong \
    --set decoder=slim --set encoder_lr=1e-4 --set ema=0.995
study --strategies baseline --seeds 0                           # hours on a 2-core CPU
# the from-scratch U-Net trained as the final model: about 6 hours on a 2-core CPU
study --strategies baseline --seeds 0 --set image_size=320x480 --set epochs=20 --set augment=strong
