"""fetalft.strategies: trainable counts, and that frozen parts really stay frozen."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
import torch
from torch import nn

from fetalft.models import count_parameters
from fetalft.strategies import (
    STRATEGIES,
    FineTuned,
    frozen_untrained_parts,
    get_strategy,
    model_parts,
    prepare_model,
    registry_table,
)

HEAD = 145
BASELINE = 31_037_633

#: Exact trainable parameters of each strategy as the authors' code ran it. The partial
#: strategies keep the head frozen (the paper's "decoder 4" = 6,976 is block 4 without the
#: head); the whole-decoder notebook freezes only ``model.encoder`` and prints 4,405,073.
TRAINABLE = {
    "baseline": BASELINE,
    "random-decoder-0-4": 4_405_073,
    "random-encoder": 2_223_872,
    "encoder": 2_223_872,
    "decoder-0": 3_761_152,
    "decoder-0-1": 4_240_896,
    "decoder-0-2": 4_365_568,
    "decoder-2-4": 164_032,
    "decoder-4": 6_976,
    "decoder-0-4": 4_405_073,
}
#: Strategies whose head trains as the authors ran them (besides the baseline's "all").
HEAD_TRAINS = {"decoder-0-4", "random-decoder-0-4"}

#: The paper printed 4.36M for decoder 0,1,2, which is 4,365,568 truncated rather than
#: rounded (4.37M); every other figure is the count rounded to the printed digits.
TRUNCATED_IN_PAPER = {"decoder-0-2"}

#: Part order along the forward pass of an smp U-Net.
FORWARD_ORDER = ("encoder", *(f"decoder.{i}" for i in range(5)), "head")

STEPS = 3


def input_size(strategy_name: str) -> int:
    return 32 if get_strategy(strategy_name).architecture == "unet" else 64


def test_every_strategy_has_an_expected_count() -> None:
    assert set(TRAINABLE) == set(STRATEGIES)


@pytest.mark.parametrize(
    "head_trainable", [None, False, True], ids=["authors-head", "head-frozen", "head-trainable"]
)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_trainable_counts(name: str, head_trainable: bool | None) -> None:
    model = prepare_model(get_strategy(name), encoder_weights=None, head_trainable=head_trainable)
    head_trains = name == "baseline" or (
        name in HEAD_TRAINS if head_trainable is None else head_trainable
    )
    without_head = TRAINABLE[name] - (HEAD if name in HEAD_TRAINS else 0)
    expected = TRAINABLE[name] if name == "baseline" else without_head + HEAD * head_trains
    assert count_parameters(model, trainable_only=True) == expected
    assert len(model.trainable_parameters()) == sum(p.requires_grad for p in model.parameters())
    assert ("head" in model.trainable) == head_trains
    assert get_strategy(name).head_trainable == (name == "baseline" or name in HEAD_TRAINS)


def printed_decimals(value: float) -> int:
    return -Decimal(repr(value)).as_tuple().exponent


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_counts_match_the_papers_figures_to_their_printed_precision(name: str) -> None:
    strategy = get_strategy(name)
    digits = printed_decimals(strategy.paper_trainable)
    millions = TRAINABLE[name] / 1e6
    if name in TRUNCATED_IN_PAPER:
        shown = math.floor(millions * 10**digits) / 10**digits
        assert round(millions, digits) != strategy.paper_trainable
    else:
        shown = round(millions, digits)
    assert shown == pytest.approx(strategy.paper_trainable, abs=1e-12)


def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'decoder-9'") as info:
        get_strategy("decoder-9")
    for name in STRATEGIES:
        assert name in str(info.value)


def test_registry_table() -> None:
    table = registry_table()
    assert list(table.columns) == [
        "strategy",
        "paper_label",
        "encoder",
        "trainable",
        "frozen",
        "total",
        "paper_trainable_M",
    ]
    assert list(table["strategy"]) == list(STRATEGIES)
    assert dict(zip(table["strategy"], table["trainable"], strict=True)) == TRAINABLE
    assert (table["trainable"] + table["frozen"] == table["total"]).all()
    rows = table.set_index("strategy")
    assert rows.loc["baseline", "total"] == BASELINE
    assert rows.loc["baseline", "frozen"] == 0
    assert rows.loc["decoder-4", "total"] == 6_628_945
    assert rows.loc["decoder-4", "frozen"] == 6_628_945 - 6_976
    assert rows.loc["baseline", "encoder"] == "none"
    assert rows.loc["random-encoder", "encoder"] == "random"
    assert rows.loc["encoder", "encoder"] == "ImageNet"
    assert rows.loc["decoder-0-2", "paper_trainable_M"] == 4.36


# -- frozen means frozen --------------------------------------------------------------------


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Trained:
    """A strategy's model before and after a few Adam steps with ``train()`` called each step."""

    def __init__(self, name: str, random_bn: str = "eval") -> None:
        torch.manual_seed(0)
        self.model: FineTuned = prepare_model(
            get_strategy(name), encoder_weights=None, random_bn=random_bn
        )
        self.parts = model_parts(self.model.net)
        self.before = {part: snapshot(module) for part, module in self.parts.items()}
        self.optimizer = torch.optim.Adam(self.model.trainable_parameters(), lr=1e-3)
        size = input_size(name)
        x = torch.randn(2, 3, size, size)
        target = (torch.rand(2, 1, size, size) > 0.5).float()
        for _ in range(STEPS):
            self.model.train()
            self.optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.binary_cross_entropy_with_logits(self.model(x), target)
            loss.backward()
            self.optimizer.step()
        self.model.train()

    def frozen_parameters(self) -> list[nn.Parameter]:
        return [p for part in self.model.frozen for p in self.parts[part].parameters()]


@pytest.fixture(scope="module", params=list(STRATEGIES))
def trained(request: pytest.FixtureRequest) -> Trained:
    return Trained(request.param)


def test_frozen_and_trainable_parts_cover_the_model(trained: Trained) -> None:
    assert set(trained.model.frozen) | trained.model.trainable == set(trained.parts)
    assert not set(trained.model.frozen) & trained.model.trainable
    assert all(
        p.requires_grad
        for part in trained.model.trainable
        for p in trained.parts[part].parameters()
    )
    assert not any(p.requires_grad for p in trained.frozen_parameters())


def test_frozen_parameters_and_buffers_are_unchanged(trained: Trained) -> None:
    for part in trained.model.frozen:
        after = trained.parts[part].state_dict()
        for key, value in trained.before[part].items():
            assert torch.equal(after[key], value), f"{part}.{key} changed"


def test_frozen_parameters_have_no_gradient_and_no_optimizer_state(trained: Trained) -> None:
    frozen = {id(p) for p in trained.frozen_parameters()}
    assert all(p.grad is None for p in trained.frozen_parameters())
    in_groups = {id(p) for group in trained.optimizer.param_groups for p in group["params"]}
    with_state = {id(p) for p in trained.optimizer.state}
    assert not frozen & in_groups
    assert not frozen & with_state
    assert with_state == in_groups == {id(p) for p in trained.model.trainable_parameters()}


def test_trainable_parameters_changed(trained: Trained) -> None:
    for part in trained.model.trainable:
        after = dict(trained.parts[part].named_parameters())
        for key, value in after.items():
            assert value.grad is not None, f"{part}.{key} got no gradient"
            assert not torch.equal(value, trained.before[part][key]), f"{part}.{key} did not move"


def test_batchnorm_statistics_move_only_in_trainable_parts(trained: Trained) -> None:
    for part in trained.model.trainable:
        layers = [m for m in trained.parts[part].modules() if isinstance(m, nn.BatchNorm2d)]
        if layers:
            after = trained.parts[part].state_dict()
            assert not torch.equal(
                after[_first_key(after, "running_mean")],
                trained.before[part][_first_key(after, "running_mean")],
            ), f"running statistics of trainable {part} did not update"
    for part in trained.model.frozen:
        after = trained.parts[part].state_dict()
        for key in after:
            if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                assert torch.equal(after[key], trained.before[part][key]), f"{part}.{key}"


def _first_key(state: dict, suffix: str) -> str:
    return next(k for k in state if k.endswith(suffix))


def test_frozen_parts_stay_in_eval_mode(trained: Trained) -> None:
    assert trained.model.training
    for part in trained.model.frozen:
        assert not any(m.training for m in trained.parts[part].modules()), part
    for part in trained.model.trainable:
        assert all(m.training for m in trained.parts[part].modules()), part
    trained.model.eval()
    assert not any(m.training for m in trained.model.modules())
    trained.model.train()
    assert all(m.training for m in trained.parts[next(iter(trained.model.trainable))].modules())


@pytest.mark.parametrize("name", [n for n, s in STRATEGIES.items() if s.architecture != "unet"])
def test_frozen_leading_parts_record_no_autograd_graph(name: str) -> None:
    model = prepare_model(get_strategy(name), encoder_weights=None).train()
    parts = model_parts(model.net)
    leading = []
    for part in FORWARD_ORDER:
        if part in model.trainable:
            break
        leading.append(part)
    outputs: dict[str, object] = {}
    hooks = [
        parts[part].register_forward_hook(
            lambda _m, _i, out, part=part: outputs.update({part: out})
        )
        for part in FORWARD_ORDER
    ]
    try:
        model(torch.randn(2, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    for part in FORWARD_ORDER:
        tensors = outputs[part] if isinstance(outputs[part], list) else [outputs[part]]
        needs_grad = any(t.requires_grad for t in tensors)
        assert needs_grad == (part not in leading), part
    if "encoder" in model.frozen:
        assert "encoder" in leading
        assert all(t.grad_fn is None for t in outputs["encoder"])


def test_encoder_frozen_with_smp_keeps_norm_layers_in_eval() -> None:
    model = prepare_model(get_strategy("decoder-0-4"), encoder_weights=None)
    model.net.train()  # smp's own train() must not wake a frozen encoder's BatchNorm
    assert not any(m.training for m in model.net.encoder.modules() if isinstance(m, nn.BatchNorm2d))


# -- frozen means frozen, through the project's Trainer ---------------------------------------


@pytest.fixture(scope="module")
def tiny_scans(synthetic_hc18) -> dict[str, list]:
    from fetalft import hc18
    from fetalft.data import load_scans, select_records

    records = hc18.load_records("training", synthetic_hc18)
    return {
        role: load_scans(select_records(records, role, limit=4), 32, progress=False)
        for role in ("train", "val")
    }


def run_trainer(
    tiny_scans,
    folder,
    name: str,
    head_trainable: bool | None = None,
    weights=None,
    random_bn: str = "eval",
):
    """A Trainer as the study builds it, its state before training, and after one epoch
    (two Adam steps, with ``train()`` and ``eval()`` around validation)."""
    from fetalft.training import RunConfig, Trainer

    config = RunConfig(
        name,
        epochs=1,
        image_size=32,
        batch_size=2,
        head_trainable=head_trainable,
        random_bn=random_bn,
        encoder_weights=weights,
    )
    trainer = Trainer(config, tiny_scans["train"], tiny_scans["val"], folder, progress=False)
    parts = model_parts(trainer.model.net)
    before = {part: snapshot(module) for part, module in parts.items()}
    trainer.fit()
    return trainer, parts, before


def check_frozen_through_trainer(trainer, parts, before) -> None:
    model = trainer.model
    frozen = [p for part in model.frozen for p in parts[part].parameters()]
    # no gradient, no optimizer state, not even in the optimizer
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    frozen_ids = {id(p) for p in frozen}
    in_groups = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not frozen_ids & in_groups
    assert not frozen_ids & {id(p) for p in trainer.optimizer.state}
    assert in_groups == {id(p) for p in model.trainable_parameters()}
    # weights and BatchNorm statistics exactly as before training
    for part in model.frozen:
        after = parts[part].state_dict()
        for key, value in before[part].items():
            assert torch.equal(after[key], value), f"frozen {part}.{key} changed"
    # and what trains did train: every trainable tensor got a gradient, and (nearly) all
    # moved. A BatchNorm bias whose every path to the loss runs through a train-mode
    # BatchNorm gets an exactly zero gradient (the encoder's deepest blocks at 1x1 spatial
    # size), so a few may stay put.
    moved = total = 0
    for part in model.trainable:
        for key, value in parts[part].named_parameters():
            assert value.grad is not None, f"trainable {part}.{key} got no gradient"
            moved += not torch.equal(value, before[part][key])
            total += 1
    assert moved >= 0.9 * total, f"only {moved} of {total} trainable tensors moved"
    # the checkpoint saved after the last epoch holds the same frozen weights
    saved = torch.load(trainer.last_path, weights_only=False)["model"]
    for part in model.frozen:
        prefix = next(k for k, m in model.named_modules() if m is parts[part])
        for key, value in before[part].items():
            assert torch.equal(saved[f"{prefix}.{key}"], value)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_trainer_keeps_frozen_parts_frozen(tiny_scans, tmp_path, name: str) -> None:
    check_frozen_through_trainer(*run_trainer(tiny_scans, tmp_path, name))


@pytest.mark.parametrize("name", ["decoder-4", "encoder", "decoder-0-2"])
def test_trainer_with_trainable_head(tiny_scans, tmp_path, name: str) -> None:
    trainer, parts, before = run_trainer(tiny_scans, tmp_path, name, head_trainable=True)
    assert "head" in trainer.model.trainable
    assert count_parameters(trainer.model, trainable_only=True) == TRAINABLE[name] + HEAD
    check_frozen_through_trainer(trainer, parts, before)


@pytest.mark.parametrize("name", sorted(HEAD_TRAINS))
def test_trainer_with_frozen_head(tiny_scans, tmp_path, name: str) -> None:
    trainer, parts, before = run_trainer(tiny_scans, tmp_path, name, head_trainable=False)
    assert "head" in trainer.model.frozen
    assert count_parameters(trainer.model, trainable_only=True) == TRAINABLE[name] - HEAD
    check_frozen_through_trainer(trainer, parts, before)


def test_trainer_keeps_a_frozen_imagenet_encoder_exactly_as_loaded(
    tiny_scans, tmp_path, imagenet_weights
) -> None:
    state = torch.load(imagenet_weights, weights_only=True)
    trainer, parts, before = run_trainer(
        tiny_scans, tmp_path, "decoder-0-4", weights=str(imagenet_weights)
    )
    check_frozen_through_trainer(trainer, parts, before)
    encoder = trainer.model.net.encoder.state_dict()
    for key, value in encoder.items():
        assert torch.equal(value, state[key]), key  # folded BatchNorm untouched


def test_trainer_recalibrates_a_trained_folded_encoder(
    tiny_scans, tmp_path, imagenet_weights
) -> None:
    from fetalft.batchnorm import is_folded

    state = torch.load(imagenet_weights, weights_only=True)
    trainer, parts, before = run_trainer(
        tiny_scans, tmp_path, "encoder", weights=str(imagenet_weights)
    )
    assert not is_folded(trainer.model.net.encoder)
    # convolution weights came from the file (recalibration changes BatchNorm only)
    assert torch.equal(before["encoder"]["features.0.0.weight"], state["features.0.0.weight"])
    check_frozen_through_trainer(trainer, parts, before)


def test_random_init_strategies_ignore_the_imagenet_weights(imagenet_weights) -> None:
    state = torch.load(imagenet_weights, weights_only=True)
    for name, strategy in STRATEGIES.items():
        if strategy.architecture == "unet":
            continue
        model = prepare_model(strategy, encoder_weights=str(imagenet_weights))
        loaded = torch.equal(model.net.encoder.features[0][0].weight, state["features.0.0.weight"])
        assert loaded == strategy.pretrained, name


# -- the authors' BatchNorm in frozen layers that were never trained --------------------------

#: Frozen parts at random initialisation, per strategy as the authors ran it (their
#: BatchNorm normalises by batch under ``random_bn="train"``).
RANDOM_FROZEN = {
    "baseline": set(),
    "random-decoder-0-4": {"encoder"},
    "random-encoder": {"decoder.0", "decoder.1", "decoder.2", "decoder.3", "decoder.4", "head"},
    "encoder": {"decoder.0", "decoder.1", "decoder.2", "decoder.3", "decoder.4", "head"},
    "decoder-0": {"decoder.1", "decoder.2", "decoder.3", "decoder.4", "head"},
    "decoder-0-1": {"decoder.2", "decoder.3", "decoder.4", "head"},
    "decoder-0-2": {"decoder.3", "decoder.4", "head"},
    "decoder-2-4": {"decoder.0", "decoder.1", "head"},
    "decoder-4": {"decoder.0", "decoder.1", "decoder.2", "decoder.3", "head"},
    "decoder-0-4": set(),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_random_bn_train_picks_the_frozen_random_parts(name: str) -> None:
    default = prepare_model(get_strategy(name), encoder_weights=None)
    authors = prepare_model(get_strategy(name), encoder_weights=None, random_bn="train")
    assert default.batch_statistics == frozenset()
    assert authors.batch_statistics == RANDOM_FROZEN[name]
    assert authors.trainable == default.trainable  # the option moves no parameter
    authors.train()
    parts = model_parts(authors.net)
    for part in authors.frozen:
        modes = {m.training for m in parts[part].modules()}
        assert modes == {part in RANDOM_FROZEN[name]}, part


def bn_input_output(model: FineTuned, block: str, x: torch.Tensor):
    """Input and output of the first BatchNorm of ``block`` when ``model`` sees ``x``."""
    bn = next(m for m in model_parts(model.net)[block].modules() if isinstance(m, nn.BatchNorm2d))
    seen = []
    # clones: the ReLU after it works in place
    hook = bn.register_forward_hook(lambda _m, i, out: seen.append((i[0].clone(), out.clone())))
    try:
        model(x)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_frozen_random_batchnorm_normalises_only_under_the_authors_mode(mode: str) -> None:
    """By the definition of BatchNorm: in training mode each channel of a batch comes out
    with mean 0 and variance 1 (initial scale 1, shift 0); in eval mode with the initial
    statistics (mean 0, variance 1) the layer passes its input through unchanged."""
    torch.manual_seed(0)
    model = prepare_model(get_strategy("decoder-0-2"), encoder_weights=None, random_bn=mode)
    model.train()
    seen, out = bn_input_output(model, "decoder.3", torch.randn(4, 3, 64, 64))
    if mode == "train":
        assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
        assert (out.var(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
        assert (seen.var(dim=(0, 2, 3), unbiased=False) - 1).abs().max() > 0.1  # it did work
    else:
        torch.testing.assert_close(out, seen / math.sqrt(1 + 1e-5))


def test_random_bn_train_moves_statistics_not_weights_and_spares_the_imagenet_encoder() -> None:
    trained = Trained("decoder-0-2", random_bn="train")
    for part in trained.model.frozen:
        after = trained.parts[part].state_dict()
        for key, before in trained.before[part].items():
            moved = not torch.equal(after[key], before)
            is_statistic = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
            if part in RANDOM_FROZEN["decoder-0-2"] and is_statistic and "decoder" in part:
                assert moved, f"{part}.{key} should follow the batches"
            else:
                assert not moved, f"{part}.{key} changed"
    assert all(p.grad is None for p in trained.frozen_parameters())


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


@pytest.mark.parametrize("head_trainable", [False, True], ids=["head-frozen", "head-trainable"])
def test_registry_table_counts_the_head_variant_it_is_asked_for(head_trainable: bool) -> None:
    """The book's head-variant table: the head's 145 parameters move between the columns."""
    rows = registry_table(head_trainable=head_trainable).set_index("strategy")
    for name, trainable in TRAINABLE.items():
        if name != "baseline":  # "all" trains the head whatever is asked
            trainable += HEAD * (head_trainable - (name in HEAD_TRAINS))
        assert rows.loc[name, "trainable"] == trainable, name
        assert rows.loc[name, "trainable"] + rows.loc[name, "frozen"] == rows.loc[name, "total"]


def test_frozen_untrained_parts_follow_the_head_variant() -> None:
    """The random head is frozen-and-untrained exactly when the variant freezes it."""
    net = prepare_model(get_strategy("decoder-0"), encoder_weights=None).net
    for name, head_trainable, head_listed in [
        ("decoder-0", None, True),
        ("decoder-0", True, False),
        ("decoder-0-4", None, False),
        ("decoder-0-4", False, True),
    ]:
        parts = frozen_untrained_parts(get_strategy(name), net, head_trainable)
        assert ("head" in parts) == head_listed, (name, head_trainable)


def test_only_pretrained_strategies_load_the_encoder_weights_file(tmp_path) -> None:
    """Offline stand-in for the ImageNet file (the test above skips without the real one): a
    MobileNetV2 state dict of constant 0.5 weights."""
    encoder = prepare_model(get_strategy("random-encoder"), encoder_weights=None).net.encoder
    state = {k: torch.full_like(v, 0.5) for k, v in encoder.state_dict().items()}
    torch.save(state, tmp_path / "fake.pth")
    for name, strategy in STRATEGIES.items():
        if strategy.architecture == "unet":
            continue
        model = prepare_model(strategy, encoder_weights=str(tmp_path / "fake.pth"))
        first = model.net.encoder.features[0][0].weight
        assert bool((first == 0.5).all()) == strategy.pretrained, name


def test_unknown_random_bn_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown random_bn 'batch'; choose one of eval, train$"):
        prepare_model(get_strategy("decoder-4"), encoder_weights=None, random_bn="batch")


def test_a_strategy_naming_a_part_the_model_lacks_is_refused() -> None:
    from fetalft.strategies import Strategy, trainable_parts

    typo = Strategy(
        name="decoder-9",
        label="decoder 9",
        architecture="mobilenet_v2",
        pretrained=True,
        trainable=("decoder.9",),
    )
    net = prepare_model(get_strategy("decoder-4"), encoder_weights=None).net
    with pytest.raises(
        ValueError, match=r"^strategy decoder-9 names unknown parts \['decoder\.9'\]$"
    ):
        trainable_parts(typo, net)


def test_unknown_strategy_message_lists_the_names_comma_separated() -> None:
    with pytest.raises(ValueError) as info:
        get_strategy("decoder-9")
    assert str(info.value).endswith(f"valid strategies: {', '.join(STRATEGIES)}")


def test_random_bn_train_follows_the_head_variant() -> None:
    """A head frozen by the variant is a frozen never-trained part like any other."""
    model = prepare_model(
        get_strategy("decoder-0-4"), encoder_weights=None, head_trainable=False, random_bn="train"
    )
    assert model.batch_statistics == {"head"}


@pytest.mark.parametrize("architecture", sorted({s.architecture for s in STRATEGIES.values()}))
def test_parts_hold_every_parameter_of_the_network_once(architecture: str) -> None:
    """Encoder, head and decoder blocks cover the network: nothing is left out of every part
    (it would train under no strategy, or under all) and nothing is in two parts."""
    from fetalft.models import build_model

    net = build_model(architecture, None)
    in_parts = [id(p) for part in model_parts(net).values() for p in part.parameters()]
    assert len(in_parts) == len(set(in_parts))
    assert set(in_parts) == {id(p) for p in net.parameters()}
    blocks = 4 if architecture == "unet" else 5  # four up-steps; smp: one per encoder stage
    assert list(model_parts(net)) == ["encoder", "head", *(f"decoder.{i}" for i in range(blocks))]


def test_train_encoder_unfreezes_only_an_imagenet_encoder() -> None:
    model = prepare_model(get_strategy("decoder-0-4"), encoder_weights=None, train_encoder=True)
    assert "encoder" in model.trainable
    assert all(p.requires_grad for p in model.net.encoder.parameters())
    model.train()
    assert all(m.training for m in model.net.encoder.modules())  # its BatchNorm trains too
    with pytest.raises(ValueError, match="strategy baseline has no ImageNet encoder to unfreeze"):
        prepare_model(get_strategy("baseline"), encoder_weights=None, train_encoder=True)
