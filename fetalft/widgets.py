"""Interactive explorers of the book (ipywidgets). They also build and update headless.

Each explorer is a small class holding its controls; displaying the object shows the
widget, and :meth:`update` redraws it, so tests can tick boxes and check the result
without a browser. In the static online book a widget cannot run (there is no Python
kernel), so each chapter shows a snapshot figure next to it; open the chapter in Colab to
use it.
"""

from __future__ import annotations

import os
from functools import lru_cache

import ipywidgets as W
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from fetalft import plots, report
from fetalft.runfiles import load_per_image, load_runs
from fetalft.strategies import STRATEGIES


class _Explorer:
    widget: W.Widget

    def _ipython_display_(self, **kwargs) -> None:
        # display() of the widget itself, not its _repr_mimebundle_: ipywidgets 8 has that
        # method, but 7.7 (Colab's preinstalled version) displays through _ipython_display_
        display(self.widget)

    def _draw(self, fig) -> None:
        """Replace the output area's content with ``fig``."""
        self.output.clear_output(wait=True)
        with self.output:
            display(fig)
        plt.close(fig)


class StrategyExplorer(_Explorer):
    """Tick the parts of the MobileNetV2 U-Net that train; see the count and the diagram.

    A preset menu sets the ticks to one of the paper's strategies. The summary compares the
    trainable count with the whole from-scratch U-Net, as the paper's 85.8% claim does.
    """

    def __init__(self, parts: pd.DataFrame | None = None, pretrained: bool = True) -> None:
        parts = report.strategy_parts() if parts is None else parts
        mobile = parts[parts["architecture"] == "mobilenet_v2"]
        first = mobile["strategy"].iloc[0]
        self.counts = mobile[mobile["strategy"] == first].set_index("part")["parameters"]
        self.order = report.part_order(self.counts.index)
        self.baseline_total = int(parts[parts["strategy"] == "baseline"]["parameters"].sum())
        self.pretrained = pretrained
        self.presets = {
            s.name: set(mobile[(mobile["strategy"] == s.name) & mobile["trainable"]]["part"])
            for s in STRATEGIES.values()
            if s.architecture == "mobilenet_v2" and s.pretrained
        }
        self.preset = W.Dropdown(
            options=["(custom)", *self.presets], value="decoder-0-4", description="strategy"
        )
        self.checkboxes = {
            part: W.Checkbox(
                value=part in self.presets["decoder-0-4"],
                description=f"{part} ({plots.millions(self.counts[part])})",
                indent=False,
            )
            for part in self.order
        }
        self.summary = W.HTML()
        self.output = W.Output()
        self._syncing = False
        self.preset.observe(self._on_preset, names="value")
        for box in self.checkboxes.values():
            box.observe(self._on_tick, names="value")
        self.widget = W.VBox(
            [
                self.preset,
                W.HBox(list(self.checkboxes.values()), layout=W.Layout(flex_flow="row wrap")),
                self.summary,
                self.output,
            ]
        )
        self.update()

    @property
    def trainable_parts(self) -> set[str]:
        return {part for part, box in self.checkboxes.items() if box.value}

    @property
    def trainable(self) -> int:
        return int(sum(self.counts[p] for p in self.trainable_parts))

    def _on_preset(self, change) -> None:
        if change["new"] in self.presets:
            self._syncing = True
            for part, box in self.checkboxes.items():
                box.value = part in self.presets[change["new"]]
            self._syncing = False
            self.update()

    def _on_tick(self, _change) -> None:
        if self._syncing:
            return
        match = [name for name, parts in self.presets.items() if parts == self.trainable_parts]
        self._syncing = True
        self.preset.value = match[0] if match else "(custom)"
        self._syncing = False
        self.update()

    def parts_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "part": self.order,
                "parameters": [self.counts[p] for p in self.order],
                "trainable": [p in self.trainable_parts for p in self.order],
            }
        )

    def update(self) -> None:
        total = int(self.counts.sum())
        trainable = self.trainable
        self.summary.value = (
            f"<b>{trainable:,}</b> trainable of {total:,} parameters "
            f"({100 * trainable / total:.1f}%); that is "
            f"{100 * (1 - trainable / self.baseline_total):.4g}% fewer than training the "
            f"whole from-scratch U-Net ({self.baseline_total:,})."
        )
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.freezing_diagram(ax, self.parts_table(), self.preset.value, self.pretrained)
        plots.freezing_legend(fig)
        self._draw(fig)

    def figure(self):
        """The current diagram as a figure (the static book shows this snapshot)."""
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.freezing_diagram(ax, self.parts_table(), self.preset.value, self.pretrained)
        plots.freezing_legend(fig)
        return fig


@lru_cache(maxsize=8)
def _records(data_dir: str) -> dict:
    from fetalft import hc18

    return {r.name: r for r in hc18.load_records("training", data_dir)}


@lru_cache(maxsize=64)
def reference_view(data_dir: str, name: str):
    """The image and the expert's ellipse of one training-set image."""
    from fetalft import hc18
    from fetalft.biometry import ellipse_from_outline

    record = _records(data_dir)[name]
    image = hc18.read_gray(record.image_path)
    truth = ellipse_from_outline(hc18.read_gray(record.annotation_path), record.name)
    return image, truth


def predicted_ellipse(row):
    """The fitted ellipse stored in a ``per_image.csv`` row, or ``None`` if no head was found."""
    import math

    from fetalft.ellipse import Ellipse

    values = [row[c] for c in ("pred_cx", "pred_cy", "pred_a", "pred_b", "pred_angle")]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return Ellipse(*map(float, values))


@plots.readable
def prediction_figure(data_dir: str | os.PathLike, row, title: str = ""):
    """Image with expert and predicted ellipses, and their overlap, for one result row
    (the page's width, so the static book shows it unshrunk)."""
    image, truth = reference_view(str(data_dir), row["name"])
    pred = predicted_ellipse(row)
    fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH_IN, 3.0))
    hc_pred = row["hc_pred_mm"]
    text = (
        f"{row['name']}: Dice {100 * row['dice']:.1f}%, HC expert {row['hc_true_mm']:.1f} mm, "
        + (
            f"predicted {hc_pred:.1f} mm (error {row['df_mm']:+.1f} mm)"
            if pred is not None
            else "no head found"
        )
    )
    plots.prediction_panel(image, truth, pred, "expert (magenta), model (green)", ax=axes[0])
    plots.overlap_panel(image.shape, truth, pred, axes[1])
    fig.suptitle(plots.wrap(title or text, plots.PAGE_WIDTH_IN, plt.rcParams["figure.titlesize"]))
    fig.tight_layout()
    return fig


class PredictionBrowser(_Explorer):
    """Browse a run's test images: image, expert ellipse, fitted prediction, HC error.

    Everything comes from the run's ``per_image.csv`` plus the dataset, so no model is
    needed. Images are ordered from worst to best Dice.
    """

    def __init__(
        self,
        profile: str,
        data_dir: str | os.PathLike,
        results_dir: str | os.PathLike | None = None,
    ) -> None:
        self.profile = profile
        self.data_dir = str(data_dir)
        self.results_dir = results_dir
        runs = load_runs(profile, results_dir)
        if runs.empty:
            raise ValueError(f"no finished runs of profile {profile!r} to browse")
        self.options = [f"{r.run} seed {r.seed}" for r in runs.itertuples(index=False)]
        default = next((o for o in self.options if o.startswith("decoder-0-4 ")), self.options[0])
        self.run = W.Dropdown(options=self.options, value=default, description="run")
        self.index = W.IntSlider(value=0, min=0, max=0, description="worst → best")
        self.output = W.Output()
        self.run.observe(lambda _c: self._load(), names="value")
        self.index.observe(lambda _c: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.run, self.index]), self.output])
        self._load()

    def _load(self) -> None:
        run, _, seed = self.run.value.rpartition(" seed ")
        table = load_per_image(self.profile, run, [int(seed)], results_dir=self.results_dir)
        self.table = table.sort_values("dice", ignore_index=True)
        self.index.max = len(self.table) - 1
        if self.index.value == 0:
            self.update()
        else:
            self.index.value = 0

    @property
    def row(self) -> pd.Series:
        return self.table.iloc[self.index.value]

    def update(self) -> None:
        self._draw(prediction_figure(self.data_dir, self.row))

    def figure(self):
        """The current view as a figure (the static book shows this snapshot)."""
        return prediction_figure(self.data_dir, self.row)
