"""Re-score chapter 8's final models, the candidates tried against the final model, and the
from-scratch U-Net trained as they were, with the ellipse fitted to the clear outline only.

The records hold every validation image's scores with the recorded fit too, which the
paired test of the candidates (:func:`fetalft.recipe.paired_change`) compares.

Every seed of ``recipe.FINAL_RUN``, ``recipe.FROZEN_ENCODER_RUN`` (on whose validation
images the share was chosen), ``recipe.ENCODER_RATE_RUN``, ``recipe.LARGER_INPUT_RUN``,
``recipe.LONGER_RUN``, ``recipe.AVERAGED_RUN`` and ``recipe.FINAL_BASELINE_RUN`` whose
``best.pt`` is in the checkpoint folder, that has finished and that has no record yet is
predicted once more (validation and test images, with the recipe's flips) and fitted with
each share of :data:`fetalft.refit.SHARES` (test: none and the chosen one); the records go
to ``results/checks/clear-fit/`` (see :mod:`fetalft.refit`). Resumable.

    FETALFT_CHECKPOINT_DIR=~/fetalft-checkpoints python scripts/refit_clear.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fetalft import recipe
from fetalft.refit import RunNotFinished, refit_runs

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    found = False
    runs = (
        recipe.FINAL_RUN,
        recipe.FROZEN_ENCODER_RUN,
        recipe.ENCODER_RATE_RUN,
        recipe.LARGER_INPUT_RUN,
        recipe.LONGER_RUN,
        recipe.AVERAGED_RUN,
        recipe.FINAL_BASELINE_RUN,
    )
    for run in runs:
        try:
            written, skipped = refit_runs(run, results_dir=ROOT / "results")
        except RunNotFinished as error:
            print(error, file=sys.stderr)
            continue
        found = found or bool(written)
        for path in written:
            print(path.relative_to(ROOT))
        if skipped:
            print(f"{run}: no best.pt for seed(s) {skipped}, not re-scored", file=sys.stderr)
    sys.exit(0 if found else 1)
