"""The published-HC18 table behind the redrawn Figure 1b and its claim check (chapter 5
draws the figure and checks its display table)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from fetalft import sota

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return sota.published_methods()


@pytest.fixture
def ours() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["decoder 0-4", "U-Net from scratch"],
            "trainable_params_m": [4.405, 31.04],
            "dice_pct": [0.962, 0.958],  # fractions: scaled to per cent
            "adf_mm": [2.4, float("nan")],
        }
    )


def bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), re.MULTILINE))


def test_every_row_cites_a_key_in_the_bibliography(table):
    keys = bib_keys()
    assert table["citation_key"].notna().all()
    assert set(table["citation_key"]) <= keys, set(table["citation_key"]) - keys


def test_test_set_labels_and_scoring(table):
    assert set(table["test_set"]) <= set(sota.TEST_SETS)
    expected = table["test_set"].map({sota.CHALLENGE: "challenge", sota.OWN_SPLIT: "own split"})
    assert (table["scoring"] == expected).all()
    paper = table[table["citation_key"] == "wang2023finetuning"]
    assert (paper["test_set"] == sota.OWN_SPLIT).all()
    assert (paper["test_images"] == 200).all()
    assert (paper["split_level"] == "image").all()
    assert (table.loc[table["scoring"] == "challenge", "test_images"].dropna() == 335).all()


def test_every_row_names_a_source(table):
    assert table["source"].str.len().gt(20).all()


def test_numbers_are_plausible(table):
    for column in ("dice_pct", "iou_pct"):
        values = table[column].dropna()
        assert ((values > 50) & (values <= 100)).all(), column
    adf = table["adf_mm"].dropna()
    assert ((adf > 0) & (adf < 20)).all()
    hd = table["hd_mm"].dropna()
    assert ((hd > 0) & (hd < 50)).all()
    for column in ("trainable_params_m", "cited_params_m", "epochs", "test_images"):
        assert (table[column].dropna() > 0).all(), column


def test_looked_up_numbers(table):
    row = table.set_index("label")
    assert row.loc["Zeng et al. 2021 (DAG V-Net)", ["dice_pct", "adf_mm", "hd_mm"]].tolist() == [
        97.93,
        1.77,
        1.29,
    ]
    assert row.loc["Fiorentino et al. 2021", ["dice_pct", "adf_mm"]].tolist() == [97.75, 1.90]
    wang = row.loc["Wang et al. 2023 (FT decoder)"]
    assert (wang["trainable_params_m"], wang["epochs"], wang["dice_pct"]) == (4.4, 20, 96.28)
    alzubaidi = row.loc["Alzubaidi et al. 2022 (ensemble)"]
    assert alzubaidi["iou_pct"] == 98.53
    # the paper's 28.12M is kept as cited, not as a looked-up count
    assert pd.isna(alzubaidi["trainable_params_m"]) and alzubaidi["cited_params_m"] == 28.12


def test_with_fetalft_appends_labelled_rows(table, ours):
    both = sota.with_fetalft(table, ours)
    assert len(both) == len(table) + len(ours)
    assert list(both.columns) == list(table.columns)
    added = both.iloc[len(table) :]
    assert (added["group"] == "fetalft").all()
    assert (added["test_set"] == sota.FETALFT_SPLIT).all()
    assert (added["scoring"] == "own split").all()
    assert added["dice_pct"].tolist() == pytest.approx([96.2, 95.8])
    assert (both.iloc[: len(table)]["group"] == "published").all()


def test_with_fetalft_needs_the_columns(table):
    with pytest.raises(ValueError, match="adf_mm"):
        sota.with_fetalft(
            table, pd.DataFrame({"name": ["x"], "trainable_params_m": [1.0], "dice_pct": [95.0]})
        )


def test_claim_check_names_the_hidden_test_set_and_the_image_level_split(table):
    text = sota.claim_check(table)
    assert "hidden test set" in text
    assert "image-level split" in text
    # every number in the text is in the table (or derived from two of its cells)
    # (not the digits of names such as "HC18" or "Figure 1b", nor the years of citations)
    found = re.findall(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?(?![a-z\d])", text)
    numbers = set(found) - {"2020", "2021", "2022", "2023"}
    cells = {f"{v:g}" for v in table.select_dtypes("number").stack()} | {
        f"{v:.2f}" for v in table.select_dtypes("number").stack()
    }
    cells |= {"999", "335", "1.65"}  # 999/335 from the test-set labels; 1.65 = 97.93 - 96.28
    assert numbers <= cells, numbers - cells


def test_claim_check_with_fetalft_rows(table, ours):
    text = sota.claim_check(sota.with_fetalft(table, ours))
    assert "fetalft" in text and "hidden test set" in text


def test_study_rows_take_the_chosen_runs_means() -> None:
    summary = pd.DataFrame(
        {
            "run": ["decoder-0-4", "baseline", "decoder-4"],
            "trainable_parameters": [4_405_073, 31_037_633, 6_976],
            "dice_mean": [0.9591, 0.9696, 0.4],
            "adf_mm_mean": [3.62, 2.93, 80.0],
        }
    )
    rows = sota.study_rows(summary, source="s")
    assert rows["name"].tolist() == ["decoder-0-4", "baseline"]
    assert rows["trainable_params_m"].tolist() == pytest.approx([4.405073, 31.037633])
    table = sota.with_fetalft(sota.published_methods(), rows)
    ours = table[table["group"] == "fetalft"].set_index("method")
    assert ours.loc["decoder-0-4", "dice_pct"] == pytest.approx(95.91)
    assert ours.loc["baseline", "adf_mm"] == pytest.approx(2.93)
    assert sota.study_rows(pd.DataFrame()).empty


def test_claim_check_tells_the_reader_how_to_rank_against_the_challenge(table) -> None:
    text = sota.claim_check(table)
    assert sota.SUBMISSION_FILE in text
    assert "python -m fetalft submit" in text
    assert f"]({sota.CHALLENGE_SERVER})" in text  # a Markdown link on the page
    assert sota.CHALLENGE_SERVER == "https://hc18.grand-challenge.org/"
    assert "challenge's format" in text and "only one that ranks" in text
    # the file it names is the committed one, in the challenge's format
    from fetalft.submission import COLUMNS, read_submission

    submission = read_submission(Path(__file__).resolve().parents[1] / sota.SUBMISSION_FILE)
    assert tuple(submission.columns) == tuple(COLUMNS)
    assert len(submission) == 335
    assert f"--output {sota.SUBMISSION_FILE}" in sota.SUBMIT_COMMAND
