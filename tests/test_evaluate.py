"""fetalft.evaluate: per-image scoring at each image's original resolution."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fetalft import hc18
from fetalft.data import Scan, ScanDataset, eval_transform, load_scans, select_records
from fetalft.device import Runtime
from fetalft.ellipse import Ellipse
from fetalft.evaluate import (
    AUTHORS_BATCH,
    ELLIPSE_COLUMNS,
    PROTOCOLS,
    TTA_FLIPS,
    evaluate,
    flip_averaged_logits,
    hc_selection_error_mm,
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


# --------------------------------------------------------------------------- hc_selection_error_mm


def test_hc_selection_error_counts_an_unmeasured_head_as_its_whole_hc() -> None:
    per_image = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d"],
            "adf_mm": [2.0, float("nan"), 4.0, 0.5],
            "hc_true_mm": [170.0, 180.0, 160.0, 150.0],
        }
    )
    # (2 + 180 + 4 + 0.5) / 4: the unmeasurable head costs its 180 mm reference
    assert hc_selection_error_mm(per_image) == pytest.approx(46.625, rel=0, abs=1e-12)
    measured = per_image.drop(index=1)
    assert hc_selection_error_mm(measured) == pytest.approx(6.5 / 3, rel=0, abs=1e-12)
    # as read back from a CSV, where an all-failed column has no numbers at all
    failed = pd.DataFrame({"adf_mm": [None, None], "hc_true_mm": [100, 300]}, dtype=object)
    assert hc_selection_error_mm(failed) == pytest.approx(200.0, rel=0, abs=1e-12)


def test_hc_selection_error_of_a_scored_table_with_one_failure(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    table = evaluate(Oracle(scans), scans, runtime, batch_size=3)
    table.loc[0] = score_scan(scans[0], np.zeros(scans[0].original_shape, np.uint8))
    assert table["adf_mm"].isna().sum() == 1
    n = len(scans)
    expected = (scans[0].hc_mm + sum(table["adf_mm"].iloc[1:])) / n
    assert hc_selection_error_mm(table) == pytest.approx(expected, rel=1e-12)
    assert hc_selection_error_mm(table) > scans[0].hc_mm / n  # the failure outweighs the rest


# --------------------------------------------------------------------------- flip TTA


class ColumnRamp(torch.nn.Module):
    """Ignores its input: logit = the column index x (train mode: -x, as a saboteur)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        ramp = torch.arange(width, dtype=torch.float32).expand(n, 1, height, width).clone()
        return -ramp if self.training else ramp


class RowRamp(torch.nn.Module):
    """Ignores its input: logit = the row index y."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        rows = torch.arange(height, dtype=torch.float32)[:, None]
        return rows.expand(n, 1, height, width).clone()


class FirstChannel(torch.nn.Module):
    """Flip-equivariant: answers the input's first channel, a pixel-wise function."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 2 - 0.3


class ChannelTimesColumn(torch.nn.Module):
    """Neither ignores its input nor commutes with flips: first channel times column index."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.arange(x.shape[-1], dtype=torch.float32)


def test_tta_flips_are_identity_left_right_and_up_down() -> None:
    assert TTA_FLIPS == ((), (-1,), (-2,))


def test_flip_averaged_logits_flip_each_answer_back() -> None:
    """A model answering the column index x: flipped left-right and back its answer is
    W - 1 - x, the other two copies give x, so the mean is (x + (W - 1 - x) + x) / 3."""
    height, width = 5, 7
    images = torch.randn(2, 3, height, width)
    x = np.arange(width, dtype=np.float32)
    expected = (x + (width - 1 - x) + x) / np.float32(3)
    out = flip_averaged_logits(ColumnRamp().eval(), images)
    assert out.shape == (2, 1, height, width) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), np.broadcast_to(expected, (2, 1, height, width)))
    # the same along rows: only the up-down copy answers H - 1 - y
    y = np.arange(height, dtype=np.float32)[:, None]
    expected_rows = (y + y + (height - 1 - y)) / np.float32(3)
    out = flip_averaged_logits(RowRamp(), images)
    np.testing.assert_array_equal(out.numpy(), np.broadcast_to(expected_rows, out.shape))


def test_flip_averaged_logits_of_an_equivariant_model_are_its_plain_logits() -> None:
    images = torch.randn(3, 3, 6, 10)
    model = FirstChannel()
    np.testing.assert_allclose(
        flip_averaged_logits(model, images).numpy(), model(images).numpy(), rtol=1e-6, atol=1e-6
    )


def test_flip_averaged_logits_flip_the_input_and_the_answer_back() -> None:
    """flip(model(flip(x))) for x * column: x * flipped column. The mean is
    x * (2 col + (W - 1 - col)) / 3; flipping only the input or only the answer would not be."""
    images = torch.randn(2, 3, 4, 9)
    column = torch.arange(9, dtype=torch.float32)
    expected = images[:, :1] * (2 * column + (8 - column)) / 3
    out = flip_averaged_logits(ChannelTimesColumn(), images)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_predict_logits_with_tta_averages_the_flips_in_eval_mode(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    model = ColumnRamp()
    model.train()  # in train mode it would answer -x
    x = np.arange(SIZE, dtype=np.float32)
    averaged = (x + (SIZE - 1 - x) + x) / np.float32(3)
    out = list(predict_logits(model, scans, runtime, batch_size=2, tta=True))
    assert not model.training
    assert [s.name for s, _ in out] == [s.name for s in scans]
    for _, logits in out:
        assert logits.shape == (SIZE, SIZE) and logits.dtype == np.float32
        np.testing.assert_array_equal(logits, np.broadcast_to(averaged, (SIZE, SIZE)))
    model.train()
    for _, logits in predict_logits(model, scans, runtime, batch_size=2):  # no flips: x itself
        np.testing.assert_array_equal(logits, np.broadcast_to(x, (SIZE, SIZE)))


class FlipAwareOracle(torch.nn.Module):
    """A perfect model that commutes with flips: it recognises each scan's image, as it is or
    flipped, and answers that scan's mask flipped the same way (+-0.2, unsure logits)."""

    def __init__(self, scans) -> None:
        super().__init__()
        dataset = ScanDataset(scans, eval_transform())
        self.pairs = [dataset[i] for i in range(len(scans))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for image in x:
            (answer,) = [
                ((mask * 2 - 1) * 0.2).flip(dims)
                for stored, mask in self.pairs
                for dims in TTA_FLIPS
                if torch.equal(image, stored.flip(dims))
            ]
            out.append(answer)
        return torch.stack(out)


def test_evaluate_with_tta_of_a_perfect_flip_symmetric_model_scores_the_same(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    model = FlipAwareOracle(scans)
    plain = evaluate(model, scans, runtime, batch_size=2)
    flipped = evaluate(model, scans, runtime, batch_size=2, tta=True)
    assert (plain["dice"] > 0.97).all() and plain["measurable"].all()
    pd.testing.assert_frame_equal(flipped, plain)


def test_evaluate_with_tta_scores_the_averaged_logits(scans) -> None:
    """A model whose head is right of column 0.6 (W - 1): with flips the averaged logit
    (x + (W - 1 - x) + x) / 3 - 0.6 (W - 1) is positive right of column 0.8 (W - 1) only."""

    class RightSide(ColumnRamp):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) - 0.6 * (x.shape[-1] - 1)

    runtime = Runtime.choose("fp32", "cpu")
    x = np.arange(SIZE, dtype=np.float32)
    averaged = np.broadcast_to((x + (SIZE - 1 - x) + x) / 3 - 0.6 * (SIZE - 1), (SIZE, SIZE))
    table = evaluate(RightSide(), scans, runtime, batch_size=4, tta=True)
    expected = pd.DataFrame(
        [score_scan(s, to_original(averaged.astype(np.float32), s.original_shape)) for s in scans]
    )
    pd.testing.assert_frame_equal(table, expected)
    assert (averaged[0] > 0).sum() == SIZE - 1 - math.floor(0.8 * (SIZE - 1))
    plain = evaluate(RightSide(), scans, runtime, batch_size=4)
    assert (table["pixel_accuracy"] != plain["pixel_accuracy"]).all()


# --------------------------------------------------------------------------- non-square input


def test_a_perfect_non_square_mask_scores_at_original_size() -> None:
    """A 270 x 400 scan (height x width) at 64 x 96 in the network: each network pixel is
    head when its centre, mapped to the original grid, lies inside the reference ellipse
    (worked out here, not by fetalft). Scored at original size, the only loss is rounding
    the outline to network pixels.

    The hand bound: a network pixel is 400/96 = 4.17 by 270/64 = 4.22 original pixels, so no
    boundary point moves more than half of 4.22, d = 2.11 pixels. The ellipse (a = 120, b = 105)
    has perimeter P = 708.5 and area A = 39584, so the symmetric difference is at most P d and
    Dice >= 1 - P d / (2 A) = 0.981 (about 0.99 with the typical error of a quarter pixel);
    the perimeter, and so HC, moves by at most 2 pi d = 13.3 pixels.
    """
    original, network = (270, 400), (64, 96)
    cx, cy, a, b, angle = 205.0, 137.0, 120.0, 105.0, 0.3
    ellipse = Ellipse(cx, cy, a, b, angle)
    rows, cols = np.mgrid[: network[0], : network[1]].astype(np.float64)
    x = (cols + 0.5) * original[1] / network[1] - 0.5
    y = (rows + 0.5) * original[0] / network[0] - 0.5
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    mask = ((u / a) ** 2 + (v / b) ** 2 <= 1).astype(np.uint8)
    pixel_mm = 0.1
    scan = Scan("000_HC", mask * 255, mask, original, pixel_mm, ellipse)

    logits = (mask.astype(np.float32) * 2 - 1) * 0.2
    predicted = to_original(logits, original)
    assert predicted.shape == original
    row = score_scan(scan, predicted)

    d = 0.5 * max(original[0] / network[0], original[1] / network[1])
    h = ((a - b) / (a + b)) ** 2  # Ramanujan's perimeter, by hand
    perimeter = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))
    worst_dice = 1 - perimeter * d / (2 * math.pi * a * b)
    assert worst_dice == pytest.approx(0.981, abs=0.001)
    assert worst_dice <= row["dice"] < 1
    assert row["dice"] >= 0.98
    assert row["measurable"]
    assert row["hc_true_mm"] == pytest.approx(perimeter * pixel_mm, rel=1e-9)
    assert row["adf_mm"] <= 2 * math.pi * d * pixel_mm
    assert row["pred_cx"] == pytest.approx(cx, abs=d) and row["pred_cy"] == pytest.approx(cy, abs=d)


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


class Undecided(torch.nn.Module):
    """A logit of exactly 0 everywhere: probability 0.5, which is not above the threshold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((len(x), 1, *x.shape[2:]))


def test_a_logit_of_exactly_zero_is_not_head_at_any_size_or_protocol(scans) -> None:
    """sigmoid(0) = 0.5 and a pixel is head when its probability is above 0.5, so original
    size, network size and the authors' pooling all find no head."""
    assert not to_original(np.zeros((4, 4), np.float32), (8, 6)).any()
    rows = protocol_scores(Undecided(), scans, Runtime.choose("fp32", "cpu"))
    assert (rows["dice"] == 0).all() and (rows["iou"] == 0).all()


@pytest.mark.parametrize("missing", ["mask", "ellipse"])
def test_protocols_refuse_a_scan_missing_either_annotation(scans, missing: str) -> None:
    half = dataclasses.replace(scans[0], **{missing: None})
    with pytest.raises(ValueError, match=f"{half.name} has no annotation"):
        protocol_scores(Everything(), [half], Runtime.choose("fp32", "cpu"))


def test_evaluate_records_each_images_pixel_size(scans) -> None:
    """biometry.refusal_reasons re-checks committed per_image.csv files by this column."""
    table = evaluate(Oracle(scans), scans, Runtime.choose("fp32", "cpu"))
    assert list(table["pixel_size_mm"]) == [scan.pixel_size_mm for scan in scans]
