"""The paper's fine-tuning strategies: which parts of the network train and which stay frozen.

A network is cut into named parts: ``encoder``, ``decoder.0`` ... ``decoder.4`` (smp's
decoder blocks, 0 the deepest) and ``head`` (the 1x1 segmentation convolution). A strategy
names the parts that train, head included or not, as the authors' code did: the paper's
partial-decoder counts leave the head frozen at random initialisation ("decoder 4" = 6,976
parameters is block 4 without the head's 145), while its whole-decoder notebook freezes only
``model.encoder`` and trains 4,405,073 parameters, head included. ``head_trainable``
overrides a strategy's choice (a variant).

Frozen means frozen: no gradient, no optimizer state, and normalisation layers in eval mode
so their running statistics never move, whatever ``model.train()`` is called. One option
departs from that on purpose: ``random_bn="train"`` lets the BatchNorm of frozen parts that
were never trained (random initialisation) normalise each batch with its own statistics in
training mode, as ``requires_grad=False`` alone does in the authors' code. In eval mode those
layers hold their initial statistics (mean 0, variance 1) and do not normalise at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from torch import nn

from fetalft import paper
from fetalft.models import ENCODER, build_model, count_parameters

DECODER_BLOCKS = tuple(f"decoder.{i}" for i in range(5))
#: The BatchNorm of frozen, never-trained parts: ``eval`` keeps the initial statistics
#: (fetalft's default), ``train`` normalises each batch as the authors' code did.
RANDOM_BN_MODES = ("eval", "train")


@dataclass(frozen=True, kw_only=True)
class Strategy:
    name: str
    label: str  # the paper's wording of the trainable layers
    architecture: str  # "unet" or "mobilenet_v2"
    pretrained: bool  # ImageNet encoder (False: random initialisation)
    trainable: tuple[str, ...]  # parts that train, "head" among them or not; ("all",): all

    @property
    def paper_trainable(self) -> float:
        """The paper's trainable-parameter figure, in millions (:data:`fetalft.paper.RESULTS`)."""
        return paper.RESULTS[self.name].trainable_m

    @property
    def encoder_init(self) -> str:
        """How the encoder starts: ``none`` (the plain U-Net has none), ``ImageNet`` or ``random``."""
        if self.architecture == "unet":
            return "none"
        return "ImageNet" if self.pretrained else "random"

    @property
    def head_trainable(self) -> bool:
        """Whether the segmentation head trains in this strategy as the authors ran it."""
        return self.trainable == ("all",) or "head" in self.trainable

    @property
    def description(self) -> str:
        init = (
            "from scratch"
            if self.architecture == "unet"
            else ("ImageNet MobileNetV2" if self.pretrained else "random-init MobileNetV2")
        )
        return f"{init}, trains {self.label}"


_D = DECODER_BLOCKS
#: Every row of the paper's results table, in its order (its numbers: :mod:`fetalft.paper`).
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            name="baseline",
            label="all (U-Net from scratch)",
            architecture="unet",
            pretrained=False,
            trainable=("all",),
        ),
        Strategy(
            name="random-decoder-0-4",
            label="decoder 0-4",
            architecture=ENCODER,
            pretrained=False,
            trainable=(*_D, "head"),
        ),
        Strategy(
            name="random-encoder",
            label="encoder",
            architecture=ENCODER,
            pretrained=False,
            trainable=("encoder",),
        ),
        Strategy(
            name="encoder",
            label="encoder",
            architecture=ENCODER,
            pretrained=True,
            trainable=("encoder",),
        ),
        Strategy(
            name="decoder-0",
            label="decoder 0",
            architecture=ENCODER,
            pretrained=True,
            trainable=_D[:1],
        ),
        Strategy(
            name="decoder-0-1",
            label="decoder 0,1",
            architecture=ENCODER,
            pretrained=True,
            trainable=_D[:2],
        ),
        Strategy(
            name="decoder-0-2",
            label="decoder 0,1,2",
            architecture=ENCODER,
            pretrained=True,
            trainable=_D[:3],
        ),
        Strategy(
            name="decoder-2-4",
            label="decoder 2,3,4",
            architecture=ENCODER,
            pretrained=True,
            trainable=_D[2:],
        ),
        Strategy(
            name="decoder-4",
            label="decoder 4",
            architecture=ENCODER,
            pretrained=True,
            trainable=_D[4:],
        ),
        Strategy(
            name="decoder-0-4",
            label="decoder 0-4",
            architecture=ENCODER,
            pretrained=True,
            trainable=(*_D, "head"),
        ),
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        ) from None


def model_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The named parts strategies refer to: the encoder, the head and each decoder block.

    Both networks :func:`fetalft.models.build_model` makes keep their decoder blocks in
    ``decoder.blocks`` (smp's ``UnetDecoder``, fetalft's own ``UNetDecoder``), and those
    blocks hold every parameter of the decoder, so the parts cover the whole network.
    """
    parts = {"encoder": model.encoder, "head": model.segmentation_head}
    parts.update({f"decoder.{i}": block for i, block in enumerate(model.decoder.blocks)})
    return parts


def trainable_parts(
    strategy: Strategy, model: nn.Module, head_trainable: bool | None = None
) -> set[str]:
    """The parts that train; ``head_trainable`` (None: the strategy's own choice) sets the head."""
    parts = set(model_parts(model))
    if strategy.trainable == ("all",):
        return parts
    chosen = set(strategy.trainable) - {"head"}
    if strategy.head_trainable if head_trainable is None else head_trainable:
        chosen.add("head")
    if unknown := chosen - parts:
        raise ValueError(f"strategy {strategy.name} names unknown parts {sorted(unknown)}")
    return chosen


def untrained_parts(strategy: Strategy, model: nn.Module) -> set[str]:
    """Parts that start from random initialisation: all but an ImageNet encoder."""
    parts = set(model_parts(model))
    return parts - {"encoder"} if strategy.pretrained else parts


def frozen_untrained_parts(
    strategy: Strategy, model: nn.Module, head_trainable: bool | None = None
) -> set[str]:
    """Frozen parts that were never trained: the ones ``random_bn="train"`` acts on."""
    return untrained_parts(strategy, model) - trainable_parts(strategy, model, head_trainable)


class FineTuned(nn.Module):
    """A network with some parts frozen for good.

    ``train()`` puts the trainable parts in training mode and keeps every frozen part in
    eval mode, so BatchNorm statistics of frozen layers stay as loaded; the frozen parts
    named in ``batch_statistics`` are the exception and follow ``train()`` like the rest (their
    BatchNorm normalises by batch, as in the authors' code). Otherwise the encoder is frozen
    with smp's own ``freeze_encoder`` where the model has one. Frozen leading parts (the encoder, and
    decoder blocks before the first trainable one) see inputs that do not require gradients,
    so autograd records nothing for them and keeps no activations.
    """

    def __init__(
        self, net: nn.Module, trainable: Iterable[str], batch_statistics: Iterable[str] = ()
    ) -> None:
        super().__init__()
        self.net = net
        self.trainable = frozenset(trainable)
        parts = model_parts(net)
        self.frozen = tuple(sorted(set(parts) - self.trainable))
        self.batch_statistics = frozenset(batch_statistics) & set(self.frozen)
        for name, part in parts.items():
            part.requires_grad_(name in self.trainable)
        frozen_encoder = "encoder" in self.frozen and "encoder" not in self.batch_statistics
        if frozen_encoder and hasattr(net, "freeze_encoder"):
            net.freeze_encoder()
        self.train()

    def train(self, mode: bool = True) -> FineTuned:
        super().train(mode)
        parts = model_parts(self.net)
        for name in set(self.frozen) - self.batch_statistics:
            parts[name].eval()
        return self

    def forward(self, x):
        return self.net(x)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def prepare_model(
    strategy: Strategy,
    encoder_weights: str | None = "imagenet",
    head_trainable: bool | None = None,
    random_bn: str = "eval",
    decoder: str = "wide",
    train_encoder: bool = False,
) -> FineTuned:
    """Build the strategy's network (ImageNet or random encoder) and freeze what it freezes.

    ``random_bn`` (one of :data:`RANDOM_BN_MODES`) is the BatchNorm mode of frozen parts
    that were never trained; see the module docstring. ``decoder`` sets the decoder's width
    (:data:`fetalft.models.DECODER_CHANNELS`); ``train_encoder`` unfreezes an ImageNet
    encoder on top of what the strategy trains.
    """
    if random_bn not in RANDOM_BN_MODES:
        raise ValueError(
            f"unknown random_bn {random_bn!r}; choose one of {', '.join(RANDOM_BN_MODES)}"
        )
    if train_encoder and not strategy.pretrained:
        raise ValueError(
            f"strategy {strategy.name} has no ImageNet encoder to unfreeze; train_encoder "
            "is for the strategies that freeze one (such as decoder-0-4)"
        )
    net = build_model(
        strategy.architecture, encoder_weights if strategy.pretrained else None, decoder
    )
    batch_statistics = (
        frozen_untrained_parts(strategy, net, head_trainable) if random_bn == "train" else set()
    )
    trainable = trainable_parts(strategy, net, head_trainable) | (
        {"encoder"} if train_encoder else set()
    )
    return FineTuned(net, trainable, batch_statistics)


def registry_table(head_trainable: bool | None = None) -> pd.DataFrame:
    """The strategies with exact trainable and frozen counts (offline, random weights).

    ``head_trainable`` None counts each strategy as the authors ran it; True or False sets
    the head of every strategy.
    """
    rows = []
    for strategy in STRATEGIES.values():
        model = prepare_model(strategy, encoder_weights=None, head_trainable=head_trainable)
        trainable = count_parameters(model, trainable_only=True)
        total = count_parameters(model)
        rows.append(
            {
                "strategy": strategy.name,
                "paper_label": strategy.label,
                "encoder": strategy.encoder_init,
                "trainable": trainable,
                "frozen": total - trainable,
                "total": total,
                "paper_trainable_M": strategy.paper_trainable,
            }
        )
    return pd.DataFrame(rows)
