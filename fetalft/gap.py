"""The paper's numbers explained row by row: what each measured difference is worth.

For every row of the paper's table, fetalft's own number (exam split, per image at the
original resolution, the strategy as the authors' code ran it) and what each factor moves
it by when that one factor is done the authors' way, each measured on committed runs:

- **leak**: the same run on the paper's image-level (leaky) split, minus ours; the test
  sets differ, so a difference of means;
- **scoring**: the same predictions scored the authors' way (squeezed, pooled per batch of
  ten), minus fetalft's scoring, over the re-scored seeds;
- **random BatchNorm**: frozen layers that were never trained normalising each batch, as
  ``requires_grad=False`` alone leaves them, minus ours (eval mode, initial statistics);
  zero by construction for a strategy with no such layer.

The head is not a factor here: every row already trains or freezes the head as the
authors' code did, and ``head change`` says what that choice moved where fetalft once
differed (the whole-decoder rows). What the measured factors do not account for is the
remaining gap; the factors were measured one at a time, so their sum is a first-order
estimate that ignores interactions. A factor without committed runs is NaN (not measured),
never zero.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from fetalft.evaluate import PROTOCOLS
from fetalft.models import build_model
from fetalft.report import paper_table
from fetalft.strategies import STRATEGIES, frozen_untrained_parts, get_strategy
from fetalft.study import RunSpec

#: The measured factors, in the order the table adds them.
FACTORS = ("leak", "scoring", "random BatchNorm")


@cache
def has_frozen_random_layers(strategy: str) -> bool:
    """Whether ``strategy`` freezes a part that was never trained (random initialisation)."""
    s = get_strategy(strategy)
    return bool(frozen_untrained_parts(s, build_model(s.architecture, None)))


def _mean_dice(runs: pd.DataFrame, run: str) -> tuple[float, str]:
    """Mean test Dice (points) over a run's seeds, and those seeds (``"0, 1, 2"``)."""
    rows = runs.loc[runs["run"] == run]
    return float(rows["dice"].mean() * 100), ", ".join(map(str, sorted(set(rows["seed"]))))


def gap_table(runs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy of the paper's table, in its order, Dice in points.

    ``runs`` from :func:`fetalft.runfiles.load_runs`, ``scores`` from
    :func:`fetalft.rescore.load_scores`. Columns: ``paper``, ``ours`` and ``seeds`` (the
    seeds behind ours, ``"0, 1, 2"``), one
    column per factor of :data:`FACTORS` (NaN: not measured), ``explained`` (ours plus the
    measured factors), ``remaining`` (paper minus explained), ``not measured`` (the factors
    left out of the sum), ``head`` and ``head change``.
    """
    paper = paper_table().set_index("strategy")["dice"]
    rows = []
    for name in STRATEGIES:
        if runs.empty or not (runs["run"] == name).any():
            continue
        ours, seeds = _mean_dice(runs, name)
        factors = {}
        leaky = RunSpec(name, 0, split="leaky").name
        factors["leak"] = (
            _mean_dice(runs, leaky)[0] - ours if (runs["run"] == leaky).any() else float("nan")
        )
        factors["scoring"] = _scoring_change(scores, name)
        random_bn = RunSpec(name, 0, random_bn="train").name
        if not has_frozen_random_layers(name):
            factors["random BatchNorm"] = 0.0
        elif (runs["run"] == random_bn).any():
            factors["random BatchNorm"] = _mean_dice(runs, random_bn)[0] - ours
        else:
            factors["random BatchNorm"] = float("nan")
        measured = {k: v for k, v in factors.items() if pd.notna(v)}
        explained = ours + sum(measured.values())
        head_trains = get_strategy(name).head_trainable
        other_head = RunSpec(name, 0, head_trainable=not head_trains).name
        rows.append(
            {
                "strategy": name,
                "paper": paper[name],
                "ours": ours,
                "seeds": seeds,
                **factors,
                "explained": explained,
                "remaining": paper[name] - explained,
                "not measured": ", ".join(k for k in FACTORS if k not in measured),
                "head": "all trains"
                if name == "baseline"
                else ("trains" if head_trains else "frozen"),
                # what the authors' head choice gives over the other one
                "head change": ours - _mean_dice(runs, other_head)[0]
                if name != "baseline" and (runs["run"] == other_head).any()
                else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("strategy") if rows else pd.DataFrame()


def _scoring_change(scores: pd.DataFrame, run: str) -> float:
    """Authors' scoring minus fetalft's (points), over the run's re-scored seeds; NaN if none."""
    if scores.empty:
        return float("nan")
    rescored = scores[scores["run"] == run]
    by_protocol = rescored.groupby("protocol")["dice"].mean()
    if by_protocol.empty:
        return float("nan")
    return float((by_protocol[PROTOCOLS["authors"]] - by_protocol[PROTOCOLS["original"]]) * 100)


def findings(table: pd.DataFrame, close: float = 2.0) -> str:
    """The table's findings in words, every number taken from ``table`` (:func:`gap_table`).

    A row counts as explained when its remaining gap is within ``close`` Dice points.
    """
    if table.empty:
        return "No main-table runs yet, so nothing to explain."
    remaining = table["remaining"]
    explained = remaining[remaining.abs() <= close]
    worst = remaining.abs().sort_values(ascending=False).head(3).index
    sentences = [
        f"The measured factors bring {len(explained)} of the {len(table)} rows within "
        f"{close:g} Dice points of the paper"
        + (f" ({', '.join(explained.index)})." if len(explained) else "."),
        "The largest gaps left are "
        + ", ".join(f"{name} ({remaining[name]:+.2f})" for name in worst)
        + " points (paper minus explained).",
    ]
    bn = table["random BatchNorm"][
        [has_frozen_random_layers(name) for name in table.index]
    ].dropna()
    if len(bn):
        helped = bn[bn > 0]
        sentences.append(
            f"Letting frozen random layers normalise each batch, as the authors' code does, "
            f"moves those rows by {bn.min():+.2f} to {bn.max():+.2f} points; it helps "
            f"{len(helped)} of the {len(bn)} strategies"
            + (f" ({', '.join(helped.index)})." if len(helped) else ".")
        )
    for factor, label in (("leak", "The leak"), ("scoring", "The authors' scoring")):
        values = table[factor].dropna()
        if len(values):
            sentences.append(
                f"{label} adds {values.min():+.2f} to {values.max():+.2f} points in the "
                f"{len(values)} row{'s' if len(values) > 1 else ''} where measured."
            )
    return " ".join(sentences)
