"""What the book's interactive explorers (ipywidgets) share; each explorer is on its page.

Each explorer is a small class holding its controls (chapter 3's strategy explorer,
chapter 5's test-image browser); displaying the object shows the widget, and its ``update``
redraws it, so the chapter can check it headless. In the static online book a widget cannot
run (there is no Python kernel), so each chapter shows a snapshot figure next to it; open
the chapter in Colab to use it. The test images and fitted ellipses they show are read here.
"""

from __future__ import annotations

from functools import lru_cache

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display


class Explorer:
    """What every explorer of the book shares (chapters 3 and 5): a subclass sets
    ``widget`` and ``output``; the object displays as its widget in ipywidgets 7.7 and 8, and
    :meth:`_draw` shows a new figure in place of the last one."""

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
