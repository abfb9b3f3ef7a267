"""Plant by hand, one at a time in a scratch copy, the bugs issue 19 lists; run the tests.

Why by hand as well as mutmut: these are the bugs that would change the book's numbers
(a threshold, a one-sided distance, a half-pixel bias, the wrong epoch's weights, an
unverified file, a mirrored mask, a network left in training mode). mutmut makes small
syntactic changes and may never make these; each plant here is the whole bug, written as a
person would write it. Each must make at least one test of the named files fail.

Each plant is a string replacement on the source. The original text must occur exactly
once, so when the code moves on the script stops with the plant's name instead of silently
testing unplanted code. The working tree is only read: the script copies the repository to
``--workdir`` (default /tmp/plant), plants there, runs the named test files (niced, one
thread), and puts the file back before the next plant. The test files are first run
unplanted: a test that already fails there does not count as catching anything.

Usage (from the repository root, in the project's venv)::

    python scripts/plant_bugs.py                          # every plant
    python scripts/plant_bugs.py hausdorff-one-way study-last-epoch
    python scripts/plant_bugs.py --list                   # the plants and their test files
    python scripts/plant_bugs.py --markdown               # last results as a markdown table

Exit status 1 when a plant is missed (no test fails), 0 when every plant is caught.
Results go to ``<workdir>/plant_results.json``; docs/mutation.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mutation import ROOT, SHARED_WEIGHTS  # scripts/ is on sys.path when run as a script

RESULTS = "plant_results.json"


@dataclass(frozen=True)
class Plant:
    """One bug: replace ``old`` (found exactly once in ``path``) by ``new``."""

    name: str
    bug: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PLANTS: tuple[Plant, ...] = (
    Plant(
        "val-dice-threshold",
        "validation Dice thresholds the logits at 0.5 instead of 0",
        "fetalft/training.py",
        "pred, truth = logits > 0, scan.mask > 0",
        "pred, truth = logits > 0.5, scan.mask > 0",
        ("tests/test_training.py",),
    ),
    Plant(
        "original-size-threshold",
        "the mask at original size thresholds the resized logits at 0.5 instead of 0",
        "fetalft/evaluate.py",
        "interpolation=cv2.INTER_LINEAR) > 0).astype(",
        "interpolation=cv2.INTER_LINEAR) > 0.5).astype(",
        ("tests/test_evaluate.py", "tests/test_predict.py"),
    ),
    Plant(
        "network-size-threshold",
        "the network-size protocols threshold the logits at 0.5 instead of 0",
        "fetalft/evaluate.py",
        "squeezed.append((logits > 0).astype(np.uint8))",
        "squeezed.append((logits > 0.5).astype(np.uint8))",
        ("tests/test_evaluate.py",),
    ),
    Plant(
        "hausdorff-pred-to-truth",
        "Hausdorff distance one way only: from the prediction to the reference",
        "fetalft/metrics.py",
        "return max(directed_hausdorff(p, t)[0], directed_hausdorff(t, p)[0])",
        "return directed_hausdorff(p, t)[0]",
        ("tests/test_metrics.py",),
    ),
    Plant(
        "hausdorff-truth-to-pred",
        "Hausdorff distance one way only: from the reference to the prediction",
        "fetalft/metrics.py",
        "return max(directed_hausdorff(p, t)[0], directed_hausdorff(t, p)[0])",
        "return directed_hausdorff(t, p)[0]",
        ("tests/test_metrics.py",),
    ),
    Plant(
        "contour-at-pixel-centres",
        "the skull contour traced through the centres of the edge pixels (HC about 0.36 mm low)",
        "fetalft/biometry.py",
        "contours = measure.find_contours(filled.astype(np.float32), 0.5)",
        "edge = filled & ~ndimage.binary_erosion(filled)\n"
        "    contours = [np.argwhere(edge).astype(np.float64)] if edge.any() else []",
        ("tests/test_biometry.py",),
    ),
    Plant(
        "study-last-epoch",
        "the study scores the test images with the last epoch's weights, reports the best epoch",
        "fetalft/study.py",
        "best_epoch = trainer.load_best()",
        "best_epoch = trainer.best_epoch",
        ("tests/test_study.py",),
    ),
    Plant(
        "study-test-without-flips",
        "the study scores the test images without the flips its recipe asks for",
        "fetalft/study.py",
        "return evaluate(trainer.model, scans, trainer.runtime, recipe.batch_size, tta)",
        "return evaluate(trainer.model, scans, trainer.runtime, recipe.batch_size, None)",
        ("tests/test_study.py",),
    ),
    Plant(
        "csv-without-checksum",
        "an official CSV already on disk is kept without checking its sha256",
        "fetalft/download.py",
        "if not force and path.is_file() and _checksum_ok(path, checksums.get(name)):",
        "if not force and path.is_file():",
        ("tests/test_download.py",),
    ),
    Plant(
        "png-without-checksum",
        "images already on disk are kept by name, without checking their official sha256",
        "fetalft/download.py",
        "if wrong := _wrong_files(folder.name, digests, checksums):",
        "if wrong := []:",
        ("tests/test_download.py",),
    ),
    Plant(
        "to-mask-mirrored",
        "to_mask draws a rotated ellipse mirrored (angle -> -angle); contains() is right",
        "fetalft/ellipse.py",
        "return self.contains(x.astype(np.float64), y.astype(np.float64)).astype(np.uint8)",
        "mirrored = Ellipse(self.cx, self.cy, self.a, self.b, -self.angle % math.pi)\n"
        "        return mirrored.contains(x.astype(np.float64), y.astype(np.float64)).astype(\n"
        "            np.uint8\n"
        "        )",
        ("tests/test_ellipse.py",),
    ),
    Plant(
        "rotation-sign",
        "the rotation in contains() with the wrong sign, so every rotated mask is mirrored",
        "fetalft/ellipse.py",
        "u = (x - self.cx) * cos + (y - self.cy) * sin\n"
        "        v = -(x - self.cx) * sin + (y - self.cy) * cos",
        "u = (x - self.cx) * cos - (y - self.cy) * sin\n"
        "        v = (x - self.cx) * sin + (y - self.cy) * cos",
        ("tests/test_ellipse.py",),
    ),
    Plant(
        "predict-without-eval",
        "predict_logits does not put the model in eval mode",
        "fetalft/evaluate.py",
        "    model.eval()\n    loader = torch.utils.data.DataLoader(",
        "    loader = torch.utils.data.DataLoader(",
        ("tests/test_evaluate.py",),
    ),
    Plant(
        "encoder-at-decoder-rate",
        "the unfrozen encoder trains at the decoder's rate, not encoder_lr",
        "fetalft/training.py",
        '{"params": list(model.net.encoder.parameters()), "lr": config.encoder_lr},',
        '{"params": list(model.net.encoder.parameters())},',
        ("tests/test_training.py",),
    ),
    Plant(
        "checkpoint-wide-decoder",
        "a checkpoint is rebuilt with the wide decoder whatever it was trained with",
        "fetalft/predict.py",
        "decoder=config.decoder,",
        'decoder="wide",',
        ("tests/test_training.py", "tests/test_cli.py"),
    ),
    Plant(
        "fallback-mean-hc",
        "a submission's fallback circle has the mean training HC, not the median",
        "fetalft/__main__.py",
        "float(np.median(train_hc))",
        "float(np.mean(train_hc))",
        ("tests/test_cli.py",),
    ),
    Plant(
        "fallbacks-unlisted",
        "submit writes the list of fallback rows without its rows",
        "fetalft/submission.py",
        'pd.DataFrame(list(fallbacks.items()), columns=["filename", "reason"])',
        'pd.DataFrame([], columns=["filename", "reason"])',
        ("tests/test_cli.py",),
    ),
    Plant(
        "paired-two-sided",
        "chapter 8's paired bar asks whether the candidate differs, not whether it is better",
        "fetalft/recipe.py",
        'wilcoxon(change, alternative="less")',
        "wilcoxon(change)",
        ("tests/test_recipe.py",),
    ),
    Plant(
        "paired-by-position",
        "chapter 8's paired bar pairs the two runs' rows by position, not by image",
        "fetalft/recipe.py",
        '"reference": reference.set_index("name")["adf_mm"]',
        '"reference": reference["adf_mm"].set_axis(candidate["name"])',
        ("tests/test_recipe.py",),
    ),
    Plant(
        "ema-validates-last-step",
        "with averaged weights, validation scores the last step's weights, not the average",
        "fetalft/training.py",
        "args = (self.scored_model, self.val_scans,",
        "args = (self.model, self.val_scans,",
        ("tests/test_training.py",),
    ),
    Plant(
        "ema-keeps-last-step",
        "with averaged weights, best.pt keeps the last step's weights, so the study tests them",
        "fetalft/training.py",
        '"model": self.scored_model.state_dict(),',
        '"model": self.model.state_dict(),',
        ("tests/test_training.py",),
    ),
    Plant(
        "multi-scale-vote",
        "the multi-scale average thresholds each scale and takes the middle mask (a vote)",
        "fetalft/rescale.py",
        "AVERAGE: np.mean(list(by_scale.values()), axis=0),",
        "AVERAGE: np.median([v > 0 for v in by_scale.values()], axis=0) - 0.5,",
        ("tests/test_rescale.py",),
    ),
    Plant(
        "pasted-whole-canvas",
        "the pasted scan is scored on the whole canvas, black frame and all, not its own part",
        "fetalft/rescale.py",
        "original_logits(logits[top : top + height, left : left + width], scan.original_shape)",
        "original_logits(logits, scan.original_shape)",
        ("tests/test_rescale.py",),
    ),
)
BY_NAME = {plant.name: plant for plant in PLANTS}


def copy_repository(workdir: Path) -> Path:
    """A fresh copy of the repository (no venv, build, git) to plant in."""
    repo = workdir / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    skip = shutil.ignore_patterns(".venv", "_build", ".git", "mutants", "__pycache__", "*.egg-info")
    shutil.copytree(ROOT, repo, ignore=skip, symlinks=True)
    return repo


def environment() -> dict[str, str]:
    """Low thread counts; the ImageNet file passed on (the copy's conftest looks beside the
    copy); no real HC18 folder, so the slow real-data tests skip: the fast ones must catch."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("FETALFT_DATA_DIR", None)
    if "FETALFT_ENCODER_WEIGHTS" not in env and SHARED_WEIGHTS.is_file():
        env["FETALFT_ENCODER_WEIGHTS"] = str(SHARED_WEIGHTS)
    return env


def check_imports_the_copy(repo: Path) -> None:
    """The venv has fetalft installed editable from the working tree: make sure the copy's
    own package is the one imported there, or every plant would be missed."""
    out = subprocess.run(
        [sys.executable, "-c", "import fetalft; print(fetalft.__file__)"],
        cwd=repo,
        env=environment(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"tests in {repo} would import fetalft from {out}, not from the copy")


def failing_tests(repo: Path, tests: tuple[str, ...]) -> list[str]:
    """The node ids that fail or error in ``tests``, run in ``repo``."""
    command = [
        "nice", "-n", "19", sys.executable, "-m", "pytest", "-q", "-rfE",
        "-p", "no:cacheprovider", "-o", "addopts=", *tests,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=repo, env=environment(), capture_output=True, text=True)
    # 0: all passed; 1: some failed; 2 with "ERROR" lines: a test file did not even import
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.MULTILINE)
    if done.returncode not in (0, 1) and not failed:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise SystemExit(
            f"pytest {' '.join(tests)} in {repo} ended with {done.returncode}:\n{tail}"
        )
    return sorted(set(failed))


def apply(repo: Path, plant: Plant) -> str:
    """Write the planted source; return the original text to restore."""
    path = repo / plant.path
    original = path.read_text(encoding="utf-8")
    if (count := original.count(plant.old)) != 1:
        raise SystemExit(
            f"plant {plant.name}: expected its original text once in {plant.path}, found it "
            f"{count} times; update PLANTS in {Path(__file__).name} to the current code:\n"
            f"{plant.old}"
        )
    planted = original.replace(plant.old, plant.new)
    try:  # a plant that does not even compile would be "caught" by every import
        compile(planted, str(path), "exec")
    except SyntaxError as error:
        raise SystemExit(f"plant {plant.name} does not compile: {error}") from None
    path.write_text(planted, encoding="utf-8")
    return original


def run(plants: list[Plant], workdir: Path) -> list[dict]:
    """Each plant's failing tests (those failing unplanted excluded), restoring each file."""
    repo = copy_repository(workdir)
    check_imports_the_copy(repo)
    files = tuple(dict.fromkeys(t for p in plants for t in p.tests))
    already = set(failing_tests(repo, files))
    if already:
        print(f"failing without any plant (not counted): {', '.join(sorted(already))}")
    results = []
    for plant in plants:
        original = apply(repo, plant)
        start = time.monotonic()
        try:
            failed = [t for t in failing_tests(repo, plant.tests) if t not in already]
        finally:
            (repo / plant.path).write_text(original, encoding="utf-8")
        seconds = round(time.monotonic() - start)
        results.append({**asdict(plant), "failed": failed, "seconds": seconds})
        verdict = f"caught by {len(failed)} test(s)" if failed else "MISSED"
        print(f"{plant.name}: {verdict} ({seconds} s)", flush=True)
        for test in failed:
            print(f"    {test}")
    return results


def grouped(failed: list[str]) -> list[str]:
    """``file.py::test`` once per test function, with how many of its cases failed."""
    cases: dict[str, int] = {}
    for node in failed:
        test = Path(node.partition("[")[0]).name  # tests/test_x.py::name[case] -> test_x.py::name
        cases[test] = cases.get(test, 0) + 1
    return [f"`{t}`" + (f" ({n} cases)" if n > 1 else "") for t, n in cases.items()]


def markdown(results: list[dict]) -> str:
    """The table for docs/mutation.md: bug, where it was planted, the tests that fail."""
    rows = ["| bug (plant) | planted in | tests that fail |", "|---|---|---|"]
    for r in results:
        tests = "<br>".join(grouped(r["failed"])) or "**none: missed**"
        rows.append(f"| {r['bug']} (`{r['name']}`) | `{r['path']}` | {tests} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plants", nargs="*", metavar="plant", help=", ".join(BY_NAME))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/plant"))
    parser.add_argument("--list", action="store_true", help="list the plants, run nothing")
    parser.add_argument("--markdown", action="store_true", help="print the last results")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.plants) - set(BY_NAME)):
        parser.error(f"unknown plant(s) {unknown}; choose from {', '.join(BY_NAME)}")
    plants = [BY_NAME[n] for n in args.plants] if args.plants else list(PLANTS)
    out = args.workdir / RESULTS
    if args.list:
        for p in plants:
            print(f"{p.name}: {p.bug} [{p.path}; {', '.join(p.tests)}]")
        return 0
    if args.markdown:
        if not out.is_file():
            parser.error(f"no results in {out}: run the plants first")
        print(markdown(json.loads(out.read_text(encoding="utf-8"))))
        return 0
    results = run(plants, args.workdir)
    # a run of some plants updates theirs and keeps the others' last results
    kept = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []
    merged = {r["name"]: r for r in kept} | {r["name"]: r for r in results}
    ordered = [merged[p.name] for p in PLANTS if p.name in merged]
    out.write_text(json.dumps(ordered, indent=1), encoding="utf-8")
    missed = [r["name"] for r in results if not r["failed"]]
    print(f"{len(results) - len(missed)} of {len(results)} plants caught; results in {out}")
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
