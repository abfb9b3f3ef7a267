"""Ship chapter 8's final model with the package: fp16 weights, SHA-256, model card.

Picks the seed of the final run (``recipe.FINAL_RUN`` under ``results/cpu-hc``) with the
smallest validation HC error (the test images choose nothing) and reads its ``best.pt``
from the checkpoint folder:

    FETALFT_CHECKPOINT_DIR=~/fetalft-checkpoints python scripts/ship_model.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fetalft import recipe
from fetalft.profiles import size_label
from fetalft.runfiles import checkpoint_path, load_history, load_metrics, load_runs
from fetalft.shipped import MODEL_DIR, write_shipped_model

ROOT = Path(__file__).resolve().parents[1]

CARD = """# Model card: fetalft decoder-0-4, chapter 8's final model

**What it is.** A U-Net with an ImageNet MobileNetV2 encoder (segmentation-models-pytorch),
{what_trains}: {parameters}. Stored in half precision; SHA-256 in `{name}.sha256`.

**Intended use.** Teaching and research: reading the fetalft book, trying the commands,
comparing methods. **Not for diagnosis** or any clinical decision.

**Training data.** HC18 (van den Heuvel et al., 2018; Zenodo 10.5281/zenodo.1327317),
{n_train} training and {n_val} validation images of the exam-level split (all scans of an
exam on one side), licensed CC BY 4.0 by its authors. No test image was used to choose
anything.

**Recipe.** Profile `cpu-hc`, run `{run}`: input {size} (height x width),
{epochs} epochs, {augment}, Adam at {lr:g}{encoder_rate} after {warmup} warm-up epoch(s), BCE + Dice
loss, best epoch by validation HC error (epoch {best_epoch}), flip test-time augmentation.
Seed {seed}, the one with the smallest validation HC error of the seeds trained. Trained on
{hardware} ({precision}), {epoch_minutes:.1f} minutes per epoch (the median epoch: the
wall time of a run that was paused, or shared the CPU, says little).

**Test results** (the {n_test} test images of the exam-level split, original resolution):
Dice {dice:.2f}%, mean absolute HC difference {adf:.2f} mm, {failures} image(s) without a
measurable head. Scored on 200 of the 999 HC18 training images, not the challenge's hidden
test set.

**Limits.** One hospital's scans (Radboud UMC), 2D standard planes of the head only;
expect worse on other machines or planes. Use `python -m fetalft predict IMAGE --pixel-size S`
with the scan's true pixel size.
"""


def main() -> int:
    runs = load_runs(recipe.PROFILE, ROOT / "results")
    seeds = runs[runs["run"] == recipe.FINAL_RUN]
    if seeds.empty:
        print(f"no finished {recipe.FINAL_RUN} runs in results/cpu-hc; run scripts/hc_study.sh")
        return 2
    row = seeds.loc[seeds["best_val_hc_error_mm"].idxmin()]
    seed = int(row["seed"])
    best = checkpoint_path(recipe.PROFILE, recipe.FINAL_RUN, seed)
    metrics = load_metrics(recipe.PROFILE, recipe.FINAL_RUN, seed, results_dir=ROOT / "results")
    encoder_lr = metrics.get("encoder_lr", 0.0)
    decoder = "a slim decoder" if metrics.get("decoder") == "slim" else "the decoder"
    card = CARD.format(
        name="decoder-0-4_cpu-hc.pt",
        what_trains=(
            f"{decoder} and the head trained, the encoder fine-tuned at a smaller rate"
            if encoder_lr
            else "the encoder frozen, the decoder and the head fine-tuned"
        ),
        encoder_rate=f" (the encoder at {encoder_lr:g})" if encoder_lr else "",
        run=recipe.FINAL_RUN,
        augment=recipe.RECIPE_LABELS["augment"](row.get("augment", "paper")),
        parameters=(
            f"all {metrics['total_parameters']:,} parameters trained"
            if metrics["trainable_parameters"] == metrics["total_parameters"]
            else f"{metrics['trainable_parameters']:,} of its {metrics['total_parameters']:,} "
            "parameters trained"
        ),
        n_train=metrics["n_train"],
        n_val=metrics["n_val"],
        n_test=metrics["n_test"],
        size=size_label(tuple(metrics["image_size"])),
        epochs=metrics["epochs"],
        lr=metrics["lr"],
        warmup=metrics["warmup_epochs"],
        best_epoch=metrics["best_epoch"],
        seed=seed,
        hardware=metrics["hardware"],
        precision=metrics["precision"],
        epoch_minutes=load_history(
            recipe.PROFILE, recipe.FINAL_RUN, seed, results_dir=ROOT / "results"
        )["train_seconds"].median()
        / 60,
        dice=100 * metrics["test"]["dice"]["mean"],
        adf=metrics["test"]["adf_mm"]["mean"],
        failures=metrics["test"]["adf_mm"]["n_nan"],
    )
    path = write_shipped_model(best, card, MODEL_DIR)
    print(
        json.dumps(
            {"seed": seed, "model": str(path.relative_to(ROOT)), "bytes": path.stat().st_size}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
