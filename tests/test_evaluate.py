"""fetalft.evaluate: per-image scoring at each image's original resolution."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fetalft import hc18
from fetalft.data import load_scans, select_records
from fetalft.device import Runtime
from fetalft.evaluate import (
    AUTHORS_BATCH,
    ELLIPSE_COLUMNS,
    PROTOCOLS,
    evaluate,
    predict_logits,
    protocol_scores,
    score_scan,
    to_original,
)

SIZE = 64


@pytest.fixture(scope="module")
def scans(synthetic_hc18: Path) -> list:
    records = hc18.load_records("training", synthetic_hc18)
    return load_scans(select_records(records, "test"), SIZE, progress=False)


class Oracle(torch.nn.Module):
    """Returns each scan's reference mask (at training size) as logits, in loader order."""

    def __init__(self, scans) -> None:
        super().__init__()
        self.masks = torch.stack([torch.from_numpy(s.mask) for s in scans])[:, None].float()
        self.index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.masks[self.index : self.index + len(x)] * 20 - 10
        self.index += len(x)
        return out


def test_to_original_resizes_then_thresholds() -> None:
    logits = np.full((4, 4), -1.0, np.float32)
    logits[:2] = 1.0
    mask = to_original(logits, (8, 6))
    assert mask.shape == (8, 6) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert mask[:3].all() and not mask[5:].any()


def test_predict_logits_yields_every_scan_in_order(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    out = list(predict_logits(Oracle(scans), scans, runtime, batch_size=2))
    assert [s.name for s, _ in out] == [s.name for s in scans]
    for scan, logits in out:
        assert logits.shape == (SIZE, SIZE) and logits.dtype == np.float32
        assert np.array_equal(logits > 0, scan.mask > 0)


def test_a_perfect_prediction_scores_perfectly_at_original_size(scans) -> None:
    table = evaluate(Oracle(scans), scans, Runtime.choose("fp32", "cpu"), batch_size=3)
    assert list(table["name"]) == [s.name for s in scans]
    assert table["measurable"].all()
    # the mask went through 64x64 and back: small edge losses only
    assert (table["dice"] > 0.97).all()
    assert (table["ellipse_dice"] > 0.97).all()
    assert (table["adf_mm"] < 0.03 * table["hc_true_mm"]).all()
    assert np.allclose(table["df_mm"], table["hc_pred_mm"] - table["hc_true_mm"])
    assert np.allclose(table["hc_true_mm"], [s.hc_mm for s in scans])
    for column in ELLIPSE_COLUMNS:
        assert table[column].notna().all()
    assert np.allclose(table["pred_cx"], [s.ellipse.cx for s in scans], atol=2)


def test_an_empty_prediction_is_a_failure_not_a_gap(scans) -> None:
    scan = scans[0]
    row = score_scan(scan, np.zeros(scan.original_shape, np.uint8))
    assert row["measurable"] is False
    assert row["dice"] == 0 and row["ellipse_dice"] == 0
    assert math.isnan(row["hc_pred_mm"]) and math.isnan(row["adf_mm"])
    assert all(math.isnan(row[c]) for c in ELLIPSE_COLUMNS)
    assert row["hc_true_mm"] == pytest.approx(scan.hc_mm)


class Everything(torch.nn.Module):
    """Calls every pixel head: Dice is then 2|T| / (|T| + |image|), different per image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(x), 1, *x.shape[2:])


def test_protocols_score_the_same_predictions_three_ways(scans) -> None:
    many = scans * 4  # more than one of the authors' batches, the last one partial
    table = protocol_scores(Oracle(many), many, Runtime.choose("fp32", "cpu"), batch_size=3)
    rows = table.set_index("protocol")
    assert list(rows.index) == list(PROTOCOLS.values())
    assert list(rows["n_averaged"]) == [len(many), len(many), math.ceil(len(many) / AUTHORS_BATCH)]
    # the oracle reproduces the training-size masks: perfect at network size, not quite at
    # original size, where the mask was squeezed and stretched back
    network = rows.loc[[PROTOCOLS["network"], PROTOCOLS["authors"]]]
    assert (network[["pixel_accuracy", "dice", "iou", "miou"]] == 1).all().all()
    assert 0.97 < rows.loc[PROTOCOLS["original"], "dice"] < 1


def test_pooling_over_batches_weights_images_by_their_head_size(scans) -> None:
    many = scans * 3
    table = protocol_scores(Everything(), many, Runtime.choose("fp32", "cpu")).set_index("protocol")
    heads = np.array([s.mask.sum() for s in many], float)
    pixels = SIZE * SIZE
    per_image = np.mean(2 * heads / (heads + pixels))
    pooled = np.mean(
        [
            2 * chunk.sum() / (chunk.sum() + pixels * len(chunk))
            for chunk in np.split(heads, range(AUTHORS_BATCH, len(heads), AUTHORS_BATCH))
        ]
    )
    assert table.loc[PROTOCOLS["network"], "dice"] == pytest.approx(per_image)
    assert table.loc[PROTOCOLS["authors"], "dice"] == pytest.approx(pooled)
    assert table.loc[PROTOCOLS["network"], "pixel_accuracy"] == pytest.approx(
        np.mean(heads / pixels)
    )


def test_protocols_refuse_unannotated_scans(scans) -> None:
    blind = dataclasses.replace(scans[0], mask=None, ellipse=None)
    with pytest.raises(ValueError, match=blind.name):
        protocol_scores(Everything(), [blind], Runtime.choose("fp32", "cpu"))


# --------------------------------------------------------------------------- unsaturated logits
# The models above answer +-10: any threshold between -10 and 10 would pass with them. A real
# network's logits near the edge are near 0, and the mask is where they are above 0.


class Unsure(torch.nn.Module):
    """Logits of +0.2 on each scan's reference mask and -0.2 elsewhere, in loader order."""

    def __init__(self, scans, margin: float = 0.2) -> None:
        super().__init__()
        self.masks = torch.stack([torch.from_numpy(s.mask) for s in scans])[:, None].float()
        self.margin = margin
        self.index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (self.masks[self.index : self.index + len(x)] * 2 - 1) * self.margin
        self.index += len(x)
        return out


def test_to_original_thresholds_unsure_logits_at_zero() -> None:
    logits = np.full((4, 4), -0.2, np.float32)
    logits[:2] = 0.2
    mask = to_original(logits, (8, 6))
    np.testing.assert_array_equal(mask[:4], 1)
    np.testing.assert_array_equal(mask[4:], 0)


def test_to_original_puts_the_edge_where_the_resized_logits_cross_zero() -> None:
    """A ramp of logits from -0.35 to +0.35 across 8 columns crosses 0 half-way: at original
    size (80 columns) exactly the right half is head, whatever the ramp's slope."""
    logits = np.tile(np.linspace(-0.35, 0.35, 8, dtype=np.float32), (8, 1))
    mask = to_original(logits, (10, 80))
    np.testing.assert_array_equal(mask[:, :40], 0)
    np.testing.assert_array_equal(mask[:, 40:], 1)


def test_unsure_logits_score_like_sure_ones_at_original_size(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    sure = evaluate(Oracle(scans), scans, runtime, batch_size=3)
    unsure = evaluate(Unsure(scans), scans, runtime, batch_size=3)
    assert (unsure["dice"] > 0.97).all()
    assert unsure["measurable"].all()
    columns = ["dice", "iou", "pixel_accuracy", "hc_pred_mm", "adf_mm", "hausdorff_mm"]
    np.testing.assert_allclose(unsure[columns], sure[columns], rtol=0, atol=1e-9)


def test_protocols_agree_on_unsure_logits(scans) -> None:
    """Original-size and network-size scoring both threshold at 0: on +-0.2 logits of the
    reference they find the head, perfectly at network size, almost at original size."""
    many = scans * 2
    runtime = Runtime.choose("fp32", "cpu")
    rows = protocol_scores(Unsure(many), many, runtime, batch_size=3).set_index("protocol")
    sure = protocol_scores(Oracle(many), many, runtime, batch_size=3).set_index("protocol")
    network = rows.loc[[PROTOCOLS["network"], PROTOCOLS["authors"]]]
    assert (network[["pixel_accuracy", "dice", "iou", "miou"]] == 1).all().all()
    assert 0.97 < rows.loc[PROTOCOLS["original"], "dice"] < 1
    assert rows.loc[PROTOCOLS["original"], "dice"] == pytest.approx(
        rows.loc[PROTOCOLS["network"], "dice"], abs=0.03
    )
    columns = ["pixel_accuracy", "dice", "iou", "miou"]
    np.testing.assert_allclose(rows[columns], sure[columns], rtol=0, atol=1e-9)


def test_a_slightly_negative_model_finds_no_head(scans) -> None:
    """Logits of -0.2 everywhere are "not head" at every size, under every protocol."""

    class Doubtful(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((len(x), 1, *x.shape[2:]), -0.2)

    runtime = Runtime.choose("fp32", "cpu")
    table = evaluate(Doubtful(), scans, runtime)
    assert (table["dice"] == 0).all() and not table["measurable"].any()
    rows = protocol_scores(Doubtful(), scans, runtime)
    assert (rows["dice"] == 0).all()


class TrainModeSaboteur(torch.nn.Module):
    """Answers the reference mask in eval mode, the inverse in training mode (as dropout or
    batch statistics would change a real network's answer)."""

    def __init__(self, scans) -> None:
        super().__init__()
        self.oracle = Unsure(scans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.oracle(x)
        return -out if self.training else out


def test_predict_logits_puts_the_model_in_eval_mode(scans) -> None:
    model = TrainModeSaboteur(scans)
    model.train()
    out = list(predict_logits(model, scans, Runtime.choose("fp32", "cpu"), batch_size=2))
    assert not model.training
    for scan, logits in out:
        np.testing.assert_array_equal(logits > 0, scan.mask > 0)
    model.oracle.index = 0
    model.train()
    table = evaluate(model, scans, Runtime.choose("fp32", "cpu"))
    assert (table["dice"] > 0.97).all()
