"""Score chapter 8's final model on the validation images with its predictions averaged
over 0.8, 1.0 and 1.2 times its input size, at each size alone, and at 0.8 pasted into a
black image of its input size (see :mod:`fetalft.rescale`).

Every seed of ``recipe.FINAL_RUN`` whose ``best.pt`` is in the checkpoint folder and that
has no record yet is scored; the records go to ``results/checks/multi-scale/``. Resumable.

    FETALFT_CHECKPOINT_DIR=~/fetalft-checkpoints python scripts/multi_scale.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fetalft import recipe
from fetalft.rescale import rescale_runs

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    written, skipped = rescale_runs(recipe.FINAL_RUN, results_dir=ROOT / "results")
    for path in written:
        print(path.relative_to(ROOT))
    if skipped:
        print(f"no best.pt for seed(s) {skipped}, not scored", file=sys.stderr)
    sys.exit(0 if written else 1)
