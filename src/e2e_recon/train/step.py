"""One DeePSiM training iteration, as published (REFERENCE.md, "One training iteration").

:func:`training_step` reads top to bottom as the four steps of the method; the
balance rule (step 5) runs in the loop because it needs the losses of every rank.
Networks arrive in :class:`Nets`: the plain modules, plus the wrappers used for a
forward pass whose backward pass trains them (DDP and/or ``torch.compile``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from e2e_recon.config import Config
from e2e_recon.device import autocast
from e2e_recon.errors import ConfigError
from e2e_recon.nets.generator import center_crop
from e2e_recon.train import distributed, losses
from e2e_recon.train.balance import BalanceState
from e2e_recon.train.distributed import DistInfo
from e2e_recon.train.schedule import SolverSchedule


@dataclass
class Nets:
    """The three networks of a training run.

    ``generator`` and ``discriminator`` are the plain modules (their state dicts are
    saved); ``generator_train`` and ``discriminator_train`` wrap them for the passes
    that train them (DistributedDataParallel, compile); ``discriminator_frozen``
    is the discriminator as seen by the generator step (compiled, never DDP).
    """

    generator: nn.Module
    discriminator: nn.Module
    comparator: nn.Module
    generator_train: nn.Module
    discriminator_train: nn.Module
    discriminator_frozen: nn.Module
    comparator_run: nn.Module


@dataclass
class Optimisers:
    """Both Adam optimisers and their learning-rate schedules.

    Each schedule counts its own network's updates (a Caffe solver's iteration
    counter), so a network the balance rule pauses keeps its rate.
    """

    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer
    generator_schedule: SolverSchedule
    discriminator_schedule: SolverSchedule

    def learning_rates(self) -> dict[str, float]:
        """``lr_g`` and ``lr_d``: the rate each network's next update will use."""
        return {
            "lr_g": self.generator_schedule.lr(),
            "lr_d": self.discriminator_schedule.lr(),
        }


@dataclass(frozen=True)
class StepSettings:
    """What a step needs besides networks and data."""

    crop_px: int
    feature_layers: tuple[str, ...]
    device: torch.device
    dtype: torch.dtype = torch.float32  # autocast dtype; losses stay float32
    input_dropout: float = 0.0
    # False when the configured adversarial weight is 0: the discriminator is then
    # neither trained nor run, which more than doubles CPU iterations per second.
    adversarial: bool = True


class NonFiniteLoss(ArithmeticError):
    """A loss that is about to drive an optimiser step is NaN or infinite."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"{name} = {value}")
        self.name = name
        self.value = value


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (input gradients still flow)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _require_finite(name: str, value: torch.Tensor) -> None:
    """Raise NonFiniteLoss on every rank when ``value`` is non-finite on any rank.

    Deciding together matters: a rank that went on into ``backward`` alone would
    wait for the others forever.
    """
    number = float(value.detach())
    bad = not math.isfinite(number)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        flag = torch.tensor([float(bad)], device=value.device)
        torch.distributed.all_reduce(flag)
        bad = bool(flag.item() > 0)
    if bad:
        raise NonFiniteLoss(name, number)


def training_step(
    nets: Nets,
    opt: Optimisers,
    voxels: torch.Tensor,
    real: torch.Tensor,
    balance: BalanceState,
    weights: losses.LossWeights,
    settings: StepSettings,
) -> dict[str, torch.Tensor]:
    """Run one iteration and return the unweighted batch-mean losses (0-d float32 tensors).

    Parameters
    ----------
    voxels : torch.Tensor
        ``(B, V)`` z-scored fMRI patterns on the training device.
    real : torch.Tensor
        ``(B, 3, crop, crop)`` real crops in Caffe space, matching ``voxels``.
    balance : BalanceState
        Which of D and G are trained in this iteration.

    Raises
    ------
    NonFiniteLoss
        Before an optimiser step that a non-finite loss would drive.
    """
    layers = settings.feature_layers
    use_features = weights.feature != 0.0

    # 1. Real features: the frozen comparator on the real crops, a fixed target.
    real_features: dict[str, torch.Tensor] = {}
    if use_features:
        with torch.no_grad(), autocast(settings.device, settings.dtype):
            real_features = nets.comparator_run(real, layers=layers)

    # 2. Fake images: the generator on the fMRI batch, centre-cropped like the real crops.
    if settings.input_dropout > 0.0 and balance.train_g:
        voxels = F.dropout(voxels, settings.input_dropout, training=True)
    g_net = nets.generator_train if balance.train_g else nets.generator
    with torch.set_grad_enabled(balance.train_g), autocast(settings.device, settings.dtype):
        fake = center_crop(g_net(voxels), settings.crop_px)  # (B, 3, crop, crop)

    # 3. Discriminator step: real labelled 0 and generated labelled 1, in one batch.
    if settings.adversarial:
        d_real, d_fake = discriminator_step(
            nets, opt, real, fake.detach(), balance.train_d, settings
        )
    else:  # no adversarial term: zero losses give a balance ratio of 1 (both train)
        d_real = d_fake = torch.zeros((), device=real.device)

    # 4. Generator step: feature + image + adversarial (label "real") losses, through the
    #    frozen comparator and the (just updated) discriminator into the generator only.
    terms = generator_step(nets, opt, fake, real, real_features, balance.train_g, weights, settings)
    terms.update(d_real=d_real, d_fake=d_fake)
    return terms


def discriminator_step(
    nets: Nets,
    opt: Optimisers,
    real: torch.Tensor,
    fake: torch.Tensor,
    train_d: bool,
    settings: StepSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator losses on real and generated crops; one Adam step when ``train_d``.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Unweighted batch-mean cross-entropies on real (label 0) and fake (label 1).
    """
    batch = real.shape[0]
    both = torch.cat([real, fake.to(real.dtype)])  # (2B, 3, crop, crop)
    d_net = nets.discriminator_train if train_d else nets.discriminator
    with torch.set_grad_enabled(train_d), autocast(settings.device, settings.dtype):
        logits = d_net(both)  # (2B, 2)
    loss_real = losses.adversarial_loss(logits[:batch], losses.REAL_LABEL).mean()
    loss_fake = losses.adversarial_loss(logits[batch:], losses.FAKE_LABEL).mean()
    if train_d:
        loss_d = loss_real + loss_fake  # gradients of both terms summed, as published
        _require_finite("discriminator loss", loss_d)
        opt.discriminator.zero_grad(set_to_none=True)
        loss_d.backward()
        opt.discriminator.step()
    return loss_real.detach(), loss_fake.detach()


def generator_step(
    nets: Nets,
    opt: Optimisers,
    fake: torch.Tensor,
    real: torch.Tensor,
    real_features: dict[str, torch.Tensor],
    train_g: bool,
    weights: losses.LossWeights,
    settings: StepSettings,
) -> dict[str, torch.Tensor]:
    """Generator losses; one Adam step when ``train_g``.

    The discriminator's parameters are frozen during this pass, so its gradients are
    neither computed nor mixed into the discriminator's next step.
    """
    layers = settings.feature_layers
    with frozen(nets.discriminator), torch.set_grad_enabled(train_g):
        with autocast(settings.device, settings.dtype):
            if settings.adversarial:
                logits = nets.discriminator_frozen(fake)  # (B, 2)
            fake_features = nets.comparator_run(fake, layers=layers) if real_features else {}
        image = losses.image_loss(fake, real)  # (B,)
        if settings.adversarial:
            adversarial = losses.adversarial_loss(logits, losses.REAL_LABEL)  # (B,)
        else:
            adversarial = torch.zeros_like(image)
        if real_features:
            feature = losses.feature_loss(fake_features, real_features, layers)  # (B,)
        else:
            feature = torch.zeros_like(image)
        total = losses.generator_total(image, feature, adversarial, weights)
        if train_g:
            _require_finite("generator loss", total)
            opt.generator.zero_grad(set_to_none=True)
            total.backward()
            opt.generator.step()
    return {
        "image": image.detach().mean(),
        "feature": feature.detach().mean(),
        "adversarial": adversarial.detach().mean(),
        "loss_g": total.detach(),
    }


def build_nets(
    cfg: Config,
    n_voxels: int,
    device: torch.device,
    info: DistInfo,
    subjects: dict[str, int] | None = None,
) -> Nets:
    """Generator and discriminator (seeded He init), frozen comparator, and their wrappers.

    Transposed-convolution biases of the generator are frozen (learning-rate
    multiplier 0 in the published model). DDP wraps the passes that train a
    network; ``torch.compile`` wraps every pass when ``train.compile`` is set.
    ``subjects`` (name -> voxel count) makes the generator a shared one
    (:class:`~e2e_recon.nets.shared.StackedGenerator`); ``n_voxels`` is then their sum.
    """
    from e2e_recon.nets.discriminator import Discriminator
    from e2e_recon.nets.generator import Generator
    from e2e_recon.nets.shared import StackedGenerator

    init = torch.Generator().manual_seed(cfg.train.seed)
    m = cfg.model
    colour = "grey" if cfg.data.colour == "grey" else "rgb"  # auto is resolved before this
    arch = {
        "fc_width": m.fc_width,
        "output_size_px": m.output_size_px,
        "base_channels": m.base_channels,
        "leaky_slope": m.leaky_slope,
        "colour": colour,
    }
    generator = (
        Generator(n_voxels, **arch)  # type: ignore[arg-type]
        if subjects is None
        else StackedGenerator(list(subjects), list(subjects.values()), **arch)
    )  # fmt: skip
    generator.reset_parameters(init)
    for module in generator.modules():
        if isinstance(module, nn.ConvTranspose2d) and module.bias is not None:
            module.bias.requires_grad_(False)
    discriminator = Discriminator(input_size_px=discriminator_size_px(cfg))
    discriminator.reset_parameters(init)
    comparator = _load_comparator(cfg)
    for net in (generator, discriminator, comparator):
        net.to(device)
        if cfg.train.channels_last:  # NHWC convolutions: faster on CPU (oneDNN) and tensor cores
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    generator.train()
    discriminator.train()  # dropout on, in both the D and the G pass, as in Caffe's TRAIN phase
    comparator.eval()

    def compiled(module: nn.Module) -> nn.Module:
        return torch.compile(module) if cfg.train.compile else module  # type: ignore[return-value]

    return Nets(
        generator=generator,
        discriminator=discriminator,
        comparator=comparator,
        generator_train=compiled(distributed.wrap(generator, info, device)),
        discriminator_train=compiled(distributed.wrap(discriminator, info, device)),
        discriminator_frozen=compiled(discriminator),
        comparator_run=compiled(comparator),
    )


def discriminator_size_px(cfg: Config) -> int:
    """Input side of the run's discriminator: the crop, as published.

    Without the adversarial term the discriminator never runs but is still built, so that
    checkpoints and resuming keep one layout; crops smaller than its five convolutions
    accept then get a discriminator of the smallest size it has.
    """
    from e2e_recon.nets.discriminator import MIN_INPUT_PX

    if not uses_adversarial(cfg):
        return max(cfg.data.crop_px, MIN_INPUT_PX)
    return cfg.data.crop_px


def uses_adversarial(cfg: Config) -> bool:
    """Whether the run trains and runs the discriminator (a non-zero adversarial weight)."""
    return cfg.loss.adversarial_weight != 0.0


def _load_comparator(cfg: Config) -> nn.Module:
    from e2e_recon.nets.loading import load_comparator

    kind, path = cfg.model.comparator, cfg.model.comparator_path or None
    if path is None and kind in ("caffenet", "alexnet"):
        from e2e_recon.data.home import resolve_comparator_weights

        path = str(resolve_comparator_weights(kind))
    comparator = load_comparator(path, kind=kind)
    available = tuple(getattr(comparator, "layer_names", ()))
    missing = [name for name in cfg.model.feature_layers if name not in available]
    if missing:
        raise ConfigError(
            f"model.feature_layers names {missing}, which comparator {kind!r} does not have; "
            f"choose from {list(available)}"
        )
    return comparator


def build_optimisers(cfg: Config, nets: Nets, device: torch.device) -> Optimisers:
    """Adam for G and D with Caffe-style L2 decay (added to the gradient) and lr halving.

    The rate halves after ``train.lr_halve_at_iters`` updates of each network's own
    optimiser (:class:`~e2e_recon.train.schedule.SolverSchedule`).

    The discriminator decays with ``train.discriminator_weight_decay`` (published
    4e-4), the generator with ``train.generator_weight_decay`` (published 0), plus
    ``model.first_layer_l2`` on the weight of its first fully connected layer.
    """
    t = cfg.train
    trainable = [p for p in nets.generator.parameters() if p.requires_grad]
    layer = next(m for m in nets.generator.modules() if isinstance(m, nn.Linear))
    first = layer.weight
    decay = t.generator_weight_decay + cfg.model.first_layer_l2
    groups: list[dict[str, object]] = [
        {"params": [p for p in trainable if p is not first]},
        {"params": [first], "weight_decay": decay},
    ]
    if t.adapt_from:  # the new input layer (its rate is the one logged), then the source's
        groups = [  # layers, whose rate train/adapt.py sets by stage (group 2)
            {"params": [first], "weight_decay": decay},
            {"params": [layer.bias]},
            {"params": [p for p in trainable if p is not first and p is not layer.bias]},
        ]
    fused = device.type in ("cpu", "cuda")  # one fused kernel per step instead of many
    opt_g = torch.optim.Adam(
        groups, lr=t.lr, betas=t.betas, weight_decay=t.generator_weight_decay, fused=fused
    )
    opt_d = torch.optim.Adam(
        nets.discriminator.parameters(),
        lr=t.lr,
        betas=t.betas,
        weight_decay=t.discriminator_weight_decay,
        fused=fused,
    )
    milestones = list(t.lr_halve_at_iters)
    return Optimisers(
        generator=opt_g,
        discriminator=opt_d,
        generator_schedule=SolverSchedule(opt_g, milestones, gamma=0.5),
        discriminator_schedule=SolverSchedule(opt_d, milestones, gamma=0.5),
    )
