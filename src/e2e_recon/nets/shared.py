"""The shared generator: one input layer per subject in front of layers all subjects share.

A shared generator is the published generator (:class:`~e2e_recon.nets.generator.Generator`)
whose first fully connected layer (``defc7``, voxels -> ``fc_width``) belongs to one
subject, with one such layer per subject; ``defc6`` and every later layer are shared.
A released Caffe generator is a one-subject shared generator.

Two forms:

- In training, :class:`StackedGenerator`: a ``Generator`` whose input is every subject's
  voxel block side by side, ``(B, V_1 + ... + V_S)``, a sample filling its own subject's
  block and zeros elsewhere. ``defc7`` is then every input layer at once (its column
  blocks), so the training step, DDP, the moving average and snapshots handle it as the
  one-subject generator. The subjects' input layers share one bias: with voxels z-scored
  per subject, a zero pattern is each subject's average response, which the shared
  layers should see as one point.
- In a generator file, named layers: ``arch["subjects"]`` maps each subject to its voxel
  count and the state dict holds ``inputs.<subject>.weight`` / ``.bias`` beside the
  shared layers under their Caffe names (``defc6.weight``, ``deconv0.weight`` ...).
  :func:`subject_generator` turns one subject of such a file into a plain ``Generator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from e2e_recon.errors import ConfigError, ModelFormatError
from e2e_recon.nets.generator import Generator

#: Key prefix of the subjects' input layers in a generator file.
INPUT_PREFIX = "inputs."
#: The subject's own layer; every other parametrised layer is shared.
INPUT_LAYER = "defc7"


def is_shared_arch(arch: Mapping[str, Any]) -> bool:
    """Whether a generator file's ``arch`` describes a shared generator (named subjects)."""
    return isinstance(arch.get("subjects"), Mapping)


class StackedGenerator(Generator):
    """A shared generator in training form: subjects' voxel blocks side by side.

    Parameters
    ----------
    subjects : sequence of str
        Subject names, in block order.
    subject_voxels : sequence of int
        Each subject's voxel count.
    **kwargs
        The :class:`Generator` architecture (``fc_width``, ``output_size_px``,
        ``base_channels``, ``leaky_slope``, ``colour``); an ``n_voxels`` must equal the
        sum of ``subject_voxels``.
    """

    def __init__(
        self, subjects: Sequence[str], subject_voxels: Sequence[int], **kwargs: Any
    ) -> None:
        if len(subjects) != len(subject_voxels) or not subjects:
            raise ConfigError("a shared generator needs one voxel count per subject")
        if len(set(subjects)) != len(subjects):
            raise ConfigError(f"subjects {list(subjects)}: each subject may appear once")
        total = sum(int(v) for v in subject_voxels)
        if kwargs.pop("n_voxels", total) != total:
            raise ConfigError("a shared generator's n_voxels must be the sum of subject_voxels")
        super().__init__(total, **kwargs)
        self.subjects = [str(s) for s in subjects]
        self.subject_voxels = [int(v) for v in subject_voxels]

    def arch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this architecture."""
        return super().arch_kwargs() | {
            "subjects": list(self.subjects),
            "subject_voxels": list(self.subject_voxels),
        }

    def block(self, subject: str) -> slice:
        """The input columns of ``subject``."""
        index = self.subjects.index(subject)
        start = sum(self.subject_voxels[:index])
        return slice(start, start + self.subject_voxels[index])

    def stack(self, voxels: torch.Tensor, subject: str) -> torch.Tensor:
        """(B, V_s) patterns of one subject -> (B, sum V) stacked input."""
        out = voxels.new_zeros((voxels.shape[0], self.n_voxels))
        out[:, self.block(subject)] = voxels
        return out


def stacked_to_file(
    arch: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A :class:`StackedGenerator`'s arch and state -> the named generator-file form."""
    subjects, counts = list(arch["subjects"]), [int(v) for v in arch["subject_voxels"]]
    out_arch = {k: v for k, v in arch.items() if k not in ("subjects", "subject_voxels")}
    out_arch.pop("n_voxels", None)
    out_arch["subjects"] = dict(zip(subjects, counts, strict=True))
    weight, bias = state[f"{INPUT_LAYER}.weight"], state[f"{INPUT_LAYER}.bias"]  # (F, sum V), (F,)
    out: dict[str, torch.Tensor] = {}
    start = 0
    for subject, count in zip(subjects, counts, strict=True):
        out[f"{INPUT_PREFIX}{subject}.weight"] = weight[:, start : start + count].clone()
        out[f"{INPUT_PREFIX}{subject}.bias"] = bias.clone()
        start += count
    out |= {k: v for k, v in state.items() if not k.startswith(f"{INPUT_LAYER}.")}
    return out_arch, out


def single_to_file(
    generator: Generator, subject: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A one-subject generator as a one-subject shared generator file (arch, state)."""
    arch = generator.arch_kwargs()
    arch.pop("n_voxels")
    arch["subjects"] = {subject: generator.n_voxels}
    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    out = {f"{INPUT_PREFIX}{subject}.{k.split('.', 1)[1]}": v for k, v in state.items()
           if k.startswith(f"{INPUT_LAYER}.")}  # fmt: skip
    return arch, out | {k: v for k, v in state.items() if not k.startswith(f"{INPUT_LAYER}.")}


def choose_subject(available: Sequence[str], subject: str | None, source: str) -> str:
    """The subject to use from a shared file holding ``available``.

    Raises
    ------
    ModelFormatError
        ``subject`` is not in the file, or none was given and the file holds several.
    """
    names = ", ".join(available)
    if subject is None:
        if len(available) == 1:
            return available[0]
        raise ModelFormatError(
            f"{source} is a shared generator of subjects {names}: name one with --subject "
            "(or subject= in load_generator), or give a test file named after the subject"
        )
    if subject not in available:
        raise ModelFormatError(
            f"{source} has no input layer for subject {subject!r}; it holds {names}. Adapt "
            "it to a new subject with `e2e-recon train --config adapt --from`"
        )
    return subject


def subject_generator(
    arch: Mapping[str, Any], state: Mapping[str, torch.Tensor], subject: str | None, source: str
) -> Generator:
    """One subject of a shared generator file as a plain :class:`Generator` (eval mode)."""
    from e2e_recon.nets.netfile import load_state_checked

    subjects = dict(arch["subjects"])
    name = choose_subject(list(subjects), subject, source)
    kwargs = {k: v for k, v in arch.items() if k != "subjects"}
    try:
        with torch.device("meta"):
            generator = Generator(int(subjects[name]), **kwargs)
    except (TypeError, ConfigError) as err:
        raise ModelFormatError(f"{source}: bad shared generator architecture ({err}).") from err
    prefix = f"{INPUT_PREFIX}{name}."
    own = {f"{INPUT_LAYER}.{k[len(prefix) :]}": v for k, v in state.items() if k.startswith(prefix)}
    shared = {k: v for k, v in state.items() if not k.startswith(INPUT_PREFIX)}
    load_state_checked(generator, own | shared, source)
    setattr(generator, "subject", name)  # noqa: B010  (a plain attribute, read by getattr)
    return generator.eval()


def shared_layers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The shared part of a generator state (every layer after ``defc7``)."""
    return {
        k: v
        for k, v in state.items()
        if not k.startswith(INPUT_PREFIX) and not k.startswith(f"{INPUT_LAYER}.")
    }
