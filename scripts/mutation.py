"""Mutation testing of the science modules with mutmut, one module at a time, in a scratch copy.

Why a scratch copy: mutmut writes mutated sources (``mutants/``) and, with ``mutmut apply``,
can rewrite a source file in place. Other people run tests against the working tree, so this
script copies the repository to ``--workdir`` (default /tmp/fetalft-mutation/<module>) and runs
mutmut there; the working tree is only read.

Why one module at a time: each module's mutants run only the fast test files that check that
module (``MODULES`` below), not the whole suite (which builds the book and executes every
chapter). Within those files mutmut runs, for each mutant, only the tests that call the
mutated function.

Usage (from the repository root, with the dev extra installed)::

    python scripts/mutation.py metrics ellipse      # some modules
    python scripts/mutation.py --all                # every science module
    python scripts/mutation.py --report metrics     # re-read finished runs, run nothing
    python scripts/mutation.py --recheck metrics    # after new tests: rerun the survivors only
                                                    # (and the mutants a stopped run left)
    python scripts/mutation.py --resume study       # go on with a run that was stopped
    python scripts/mutation.py --markdown --all     # finished runs as docs/mutation.md's tables

Each run writes ``<workdir>/<module>/summary.json``: the counts by status and, for every
mutant that was not killed, its line in the original file and the diff. docs/mutation.md
records the result; CI does not run this (a full run takes hours on two cores).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = (
    ROOT.parent
    / "shared"
    / "weights"
    / "mobilenet_v2_imagenet_tflite_quant_dequant_torchvision.pth"
)

# The fast test files that check each module. A mutant that survives these but would be
# caught by a slow test elsewhere still counts as a survivor: the fast files should catch it.
MODULES: dict[str, list[str]] = {
    "metrics": ["tests/test_metrics.py"],
    "ellipse": ["tests/test_ellipse.py"],
    "split": ["tests/test_split.py"],
    "evaluate": ["tests/test_evaluate.py"],
    "strategies": ["tests/test_strategies.py"],
    "training": ["tests/test_training.py"],
    "study": ["tests/test_study.py"],
    "biometry": ["tests/test_biometry.py"],
    "submission": ["tests/test_submission.py"],
}

# mutmut's statuses; "detected" counts kills, timeouts (a mutant that hangs is caught) and
# segfaults (one that crashes the test process, e.g. None passed into OpenCV, is caught too).
DETECTED = ("killed", "timeout", "segfault")


def mutmut_section(module: str) -> str:
    """The [tool.mutmut] table for one module (written into the scratch copy only)."""
    tests = ", ".join(f'"{t}"' for t in MODULES[module])
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["fetalft/"]\n'
        f'only_mutate = ["fetalft/{module}.py"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
        "use_git_change_detection = false\n"
    )


def prepare(module: str, workdir: Path) -> Path:
    """Copy the repository to ``workdir/repo`` and configure mutmut there for ``module``."""
    repo = workdir / "repo"
    shutil.rmtree(repo, ignore_errors=True)  # a fresh copy and run, no stale mutants
    skip = shutil.ignore_patterns(".venv", "_build", ".git", "mutants", "__pycache__", "*.egg-info")
    shutil.copytree(ROOT, repo, ignore=skip, symlinks=True)
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    if "[tool.mutmut]" in text:
        raise SystemExit(f"{ROOT / 'pyproject.toml'} has a [tool.mutmut] table; remove it")
    # The suite's addopts run every notebook (nbmake); mutants need the plain test files.
    text = re.sub(r"(?m)^addopts = .*$", 'addopts = ""', text)
    pyproject.write_text(text + mutmut_section(module), encoding="utf-8")
    return repo


def mutmut(repo: Path, *args: str) -> str:
    """Run one mutmut command in the scratch copy, low priority, one thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    # tests/conftest.py finds the offline ImageNet file beside the repository; the scratch copy
    # is elsewhere, so point at it, or the tests that need it would skip and their mutants live.
    # (Real HC18 data is not passed: the real-data tests stay skipped.)
    if "FETALFT_ENCODER_WEIGHTS" not in env and SHARED_WEIGHTS.is_file():
        env["FETALFT_ENCODER_WEIGHTS"] = str(SHARED_WEIGHTS)
    command = ["nice", "-n", "19", str(Path(sys.executable).parent / "mutmut"), *args]
    return subprocess.run(
        command, cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def diffs(repo: Path, module: str, names: list[str]) -> dict[str, str]:
    """Each mutant's diff, as ``mutmut show`` prints it, from one process (``mutmut show``
    starts a process per mutant, seconds each on a loaded machine: half an hour for 300)."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        f"path = Path('fetalft/{module}.py')\n"
        "names = json.loads(sys.stdin.read())\n"
        # the newline `mutmut show` ends with, so diffs compare with earlier summaries
        "print(json.dumps({n: get_diff_for_mutant(n, path=path) + '\\n' for n in names}))\n"
    )
    command = ["nice", "-n", "19", sys.executable, "-c", script]
    out = subprocess.run(
        command, cwd=repo, input=json.dumps(names), check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def locate(source: str, mutant: str, diff: str) -> int | None:
    """Line in the original file of the first line the mutant removes, for the record."""
    key = mutant.rpartition(".")[2].partition("__mutmut_")[0]  # x_name or xǁClassǁname
    name = key.split("ǁ")[-1] if "ǁ" in key else key[2:]
    lines = source.splitlines()
    removed = [line[1:].strip() for line in diff.splitlines()[2:] if line.startswith("-")]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            for number in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                if removed and lines[number - 1].strip() == removed[0]:
                    return number
    return None


def summarize(module: str, repo: Path, seconds: float | None, previous: dict | None = None) -> dict:
    """Counts by status and the mutants not killed, read from mutmut's results.

    With ``previous`` (a recheck) only its not-killed mutants were run again; the others keep
    the status they had, and a re-run mutant whose diff changed (the source moved on) fails.
    """
    statuses: dict[str, str] = {}
    for line in mutmut(repo, "results", "--all", "true").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    counts: dict[str, int] = {}
    if previous:
        rechecked = {m["mutant"]: m for m in previous["not_killed"]}
        counts = dict(previous["counts"])
        for m in rechecked.values():
            counts[m["status"]] -= 1
        statuses = {name: statuses[name] for name in rechecked}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    source = (repo / "fetalft" / f"{module}.py").read_text(encoding="utf-8")
    others = []
    # the survivors are recorded; on a recheck every re-run mutant is compared with before
    shown = [n for n, s in sorted(statuses.items()) if previous or s not in DETECTED]
    for name, diff in diffs(repo, module, shown).items():
        status = statuses[name]
        if previous and diff != rechecked[name]["diff"]:
            raise SystemExit(f"{name} is another mutation now ({module}.py changed): run it all")
        if status not in DETECTED:
            line = locate(source, name, diff)
            others.append({"mutant": name, "status": status, "line": line, "diff": diff})
    counts = {k: v for k, v in counts.items() if v}
    total = sum(counts.values())
    detected = sum(counts.get(s, 0) for s in DETECTED)
    return {
        "module": f"fetalft/{module}.py",
        # which state of the code the numbers describe (others may be editing it meanwhile)
        "source_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest()[:12],
        "tests": MODULES[module],
        "total": total,
        "counts": counts,
        "score": round(detected / total, 4) if total else None,
        "seconds": seconds if not previous else previous["seconds"],
        "recheck_seconds": seconds if previous else None,
        "not_killed": others,
    }


def change(diff: str) -> str:
    """The mutation in one line: the removed and the added source lines of the diff."""
    lines = diff.splitlines()[3:]
    removed = " ".join(line[1:].strip() for line in lines if line.startswith("-"))
    added = " ".join(line[1:].strip() for line in lines if line.startswith("+"))
    return f"`{removed}` → `{added}`"


def markdown(summaries: list[dict]) -> str:
    """The score table and the list of mutants not killed, for docs/mutation.md."""
    out = [
        "| module | source sha256 | tests | mutants | killed | timeout | segfault | survived "
        "| no tests | not run | score |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        c = s["counts"]
        detected = sum(c.get(status, 0) for status in DETECTED)  # not the rounded score
        out.append(
            f"| `{s['module']}` | {s.get('source_sha256', '?')} "
            f"| {', '.join(Path(t).name for t in s['tests'])} | {s['total']} "
            f"| {c.get('killed', 0)} | {c.get('timeout', 0)} | {c.get('segfault', 0)} "
            f"| {c.get('survived', 0)} | {c.get('no tests', 0)} | {c.get('not checked', 0)} "
            f"| {detected / s['total']:.1%} |"
        )
    out += ["", "| mutant | status | line | mutation |", "|---|---|---|---|"]
    for s in summaries:
        for m in s["not_killed"]:
            if m["status"] == "not checked":  # a stopped run's rest: counted, not listed
                continue
            name = m["mutant"].rpartition(".")[2]
            where = f"{s['module']}:{m['line']}"
            out.append(f"| {name} | {m['status']} | {where} | {change(m['diff'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=", ".join(MODULES))
    parser.add_argument("--all", action="store_true", help="every module in MODULES")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fetalft-mutation"))
    parser.add_argument("--max-children", type=int, default=2, help="mutants run in parallel")
    parser.add_argument("--report", action="store_true", help="summarise finished runs only")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run again only the mutants the last run did not kill (after adding tests)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with a stopped run in its scratch copy, as it was (mutmut keeps each "
        "mutant's verdict, so only the undecided ones run); without one, start afresh",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the summaries as markdown, run nothing"
    )
    args = parser.parse_args(argv)
    modules = list(MODULES) if args.all else args.modules
    if not modules:
        parser.error("name at least one module, or --all")
    if unknown := sorted(set(modules) - set(MODULES)):
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    if args.markdown:
        paths = [args.workdir / m / "summary.json" for m in modules]
        summaries = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.exists()]
        print(markdown(summaries))
        if missing := [m for m, p in zip(modules, paths, strict=True) if not p.exists()]:
            print(f"\nNo finished run of {', '.join(missing)}.")
        return 0
    for module in modules:
        workdir = args.workdir / module
        out = workdir / "summary.json"
        if args.recheck and not out.is_file():
            raise SystemExit(
                f"no finished run of {module} in {workdir} to recheck; run it all first: "
                f"python scripts/mutation.py {module}"
            )
        previous = json.loads(out.read_text(encoding="utf-8")) if args.recheck else None
        names = [m["mutant"] for m in previous["not_killed"]] if previous else []
        if args.report:  # the wall time is the run's, kept from its summary
            repo = workdir / "repo"
            seconds = (
                json.loads(out.read_text(encoding="utf-8"))["seconds"] if out.exists() else None
            )
        elif previous and not names:
            print(f"{module}: nothing to recheck")
            continue
        else:
            resume = args.resume and (workdir / "repo" / "mutants").is_dir()
            repo = workdir / "repo" if resume else prepare(module, workdir)
            start = time.monotonic()
            mutmut(repo, "run", "--max-children", str(args.max_children), *names)
            seconds = round(time.monotonic() - start)
        summary = summarize(module, repo, seconds, previous)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(out)  # atomic: a reader never sees half a summary
        counts = ", ".join(f"{n} {s}" for s, n in sorted(summary["counts"].items()))
        print(f"{module}: {summary['total']} mutants ({counts}), score {summary['score']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
