#!/usr/bin/env bash
# Execute every chapter in place, so that the committed notebooks carry the outputs the
# book shows (_config.yml has execute_notebooks: off; the book build never runs code).
#
# Run it after the study (bash scripts/cpu_study.sh) has written results/cpu/: the
# results chapters only read finished runs, and chapter 4's run is skipped when it exists.
# Point FETALFT_CHECKPOINT_DIR (and FETALFT_RESULTS_DIR) where the study wrote, if it was not
# the repository's checkpoints/ and results/: chapter 6 measures the test set with best.pt.
#   FETALFT_DATA_DIR=../shared/hc18 \
#   FETALFT_ENCODER_WEIGHTS=../shared/weights/mobilenet_v2_imagenet_tflite_quant_dequant_torchvision.pth \
#   FETALFT_CHECKPOINT_DIR=../fetalft-checkpoints \
#   bash scripts/execute_notebooks.sh            # cpu profile (the book's results)
#   FETALFT_PROFILE=smoke bash scripts/execute_notebooks.sh   # quick placeholder outputs
# Extra arguments select notebooks: bash scripts/execute_notebooks.sh notebooks/05_results.ipynb
set -euo pipefail
cd "$(dirname "$0")/.."
export FETALFT_PROFILE="${FETALFT_PROFILE:-cpu}"
unset MPLBACKEND  # a non-interactive backend (Agg, as in CI) would leave the chapters without figures

if [[ "$FETALFT_PROFILE" != smoke ]]; then
  python -c "from fetalft import hc18; hc18.find_data_dir()" || {
    echo "HC18 not found: set FETALFT_DATA_DIR (or run python -m fetalft download)" >&2
    exit 2
  }
fi
python scripts/sync_notebooks.py

if [[ $# -gt 0 ]]; then notebooks=("$@"); else notebooks=(notebooks/[0-9][0-9]_*.ipynb); fi
for notebook in "${notebooks[@]}"; do
  echo "== $notebook (profile $FETALFT_PROFILE)"
  start=$SECONDS
  jupyter execute --inplace --timeout=-1 --kernel_name=python3 "$notebook"
  echo "   $((SECONDS - start)) s"
done
python scripts/sync_notebooks.py --check
