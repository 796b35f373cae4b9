"""The evaluation networks: official weight files, their checks, and loading from the data home.

=================  =============================================  ===========================
key                file (``HOME/weights/``)                       what is verified
=================  =============================================  ===========================
alexnet            alexnet-owt-7be5be79.pth (download.pytorch.org)  SHA-256 prefix in the name
vgg19              vgg19-dcbb9e9d.pth (download.pytorch.org)        SHA-256 prefix in the name
inception_v3       inception_v3_google-0cc3c7bd.pth (idem)          SHA-256 prefix in the name
efficientnet_b1    efficientnet_b1-c27df63c.pth (idem)              SHA-256 prefix in the name
swav_resnet50      swav_800ep_pretrain.pth.tar (dl.fbaipublicfiles)  no published checksum
clip_vit_l14       ViT-L-14.pt (openaipublic.azureedge.net)         full SHA-256 in the URL
=================  =============================================  ===========================

torchvision publishes the first 8-10 hex digits of each file's SHA-256 in its
name and checks only those (``torch.hub``'s ``check_hash``); OpenAI's URL holds
the full SHA-256; Facebook publishes no checksum for SwAV, so that file is
checked by its content: it must hold every ResNet-50 parameter with the right
shape (the download prints its SHA-256, to compare with another copy).
Every file must also load strictly into its architecture.

Files are fetched by ``e2e-recon download eval-nets``. Evaluation hashes each
file it uses (:func:`check_weights`) and names it the official release only when
its SHA-256 (or the published prefix) matches; any other file, one put in place
by hand included, is used and labelled "unverified" with its SHA-256, except a
TorchScript archive (it runs code) that does not match. Evaluation never
touches the network.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from e2e_recon.data.fetching.fetch import RemoteFile, file_digest
from e2e_recon.data.home import WEIGHTS_DIR, data_home, remote_file_path
from e2e_recon.errors import ModelFormatError
from e2e_recon.evalnets.clip_vit import VisionTransformer, ViTShape
from e2e_recon.evalnets.convnets import VGG19, AlexNet, ResNet50
from e2e_recon.evalnets.efficientnet import EfficientNetB1
from e2e_recon.evalnets.inception import InceptionV3
from e2e_recon.load_errors import describe_load_error

TORCHVISION_MODELS = "https://download.pytorch.org/models"
DOWNLOAD_COMMAND = "e2e-recon download eval-nets"


@dataclass(frozen=True)
class EvalNetSpec:
    """One evaluation network: where its weights come from and how they load.

    Attributes
    ----------
    key : str
        Short name (``alexnet``).
    title : str
        What it is, for tables and ``metrics.json``.
    url : str
        Official download address.
    size_mb : int
        Approximate file size, for the download's help.
    kind : str
        ``torchvision`` (plain state dict), ``swav`` (``module.``-prefixed backbone
        with a projection head) or ``clip`` (OpenAI's TorchScript archive).
    build : callable
        The architecture with random weights.
    """

    key: str
    title: str
    url: str
    size_mb: int
    kind: str
    build: Callable[[], nn.Module]

    @property
    def file_name(self) -> str:
        return file_name_of(self.url)

    @property
    def pattern(self) -> str:
        """Glob of the file in ``HOME/weights`` (any release of the same file name stem)."""
        return re.sub(r"-[0-9a-f]{8,64}(\.[A-Za-z.]+)$", r"-*\1", self.file_name)


EVAL_NETS: dict[str, EvalNetSpec] = {
    spec.key: spec
    for spec in (
        EvalNetSpec(
            "alexnet", "AlexNet, torchvision IMAGENET1K_V1",
            f"{TORCHVISION_MODELS}/alexnet-owt-7be5be79.pth", 233, "torchvision", AlexNet,
        ),
        EvalNetSpec(
            "vgg19", "VGG19, torchvision IMAGENET1K_V1",
            f"{TORCHVISION_MODELS}/vgg19-dcbb9e9d.pth", 548, "torchvision", VGG19,
        ),
        EvalNetSpec(
            "inception_v3", "Inception-v3, torchvision IMAGENET1K_V1",
            f"{TORCHVISION_MODELS}/inception_v3_google-0cc3c7bd.pth", 104, "torchvision",
            InceptionV3,
        ),
        EvalNetSpec(
            "efficientnet_b1", "EfficientNet-B1, torchvision IMAGENET1K_V2",
            f"{TORCHVISION_MODELS}/efficientnet_b1-c27df63c.pth", 31, "torchvision",
            EfficientNetB1,
        ),
        EvalNetSpec(
            "swav_resnet50", "ResNet-50 trained with SwAV (800 epochs), facebookresearch/swav",
            "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar", 109,
            "swav", lambda: ResNet50(num_classes=None),
        ),
        EvalNetSpec(
            "clip_vit_l14", "CLIP ViT-L/14 image encoder, openai/CLIP",
            "https://openaipublic.azureedge.net/clip/models/"
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            890, "clip", VisionTransformer,
        ),
    )
}  # fmt: skip

#: Extra entries of the SwAV checkpoint that are not part of the backbone.
SWAV_HEAD_PREFIXES = ("projection_head.", "prototypes.")


def file_name_of(url: str) -> str:
    """The last path segment of a URL."""
    return urllib.parse.urlparse(url).path.rpartition("/")[2]


def digest_of_url(url: str) -> tuple[str | None, str | None]:
    """The checksum a URL publishes: a 64-hex folder (full SHA-256), a ``-<hex>`` name
    suffix (SHA-256 prefix, torchvision's convention), or none."""
    path = urllib.parse.urlparse(url).path
    for segment in path.split("/")[:-1]:
        if re.fullmatch(r"[0-9a-f]{64}", segment):
            return "sha256", segment
    match = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+(\.[A-Za-z]+)?$", path)
    return ("sha256-prefix", match.group(1)) if match else (None, None)


def eval_net_remote(spec: EvalNetSpec, home: Path, url: str | None = None) -> RemoteFile:
    """The download of one network's weights into ``home/weights``."""
    url = url or spec.url
    algorithm, digest = digest_of_url(url)
    return RemoteFile(
        url,
        remote_file_path(home, WEIGHTS_DIR, file_name_of(url)),
        None,
        algorithm,
        digest,
        url,
    )


def find_weights(key: str, home: str | os.PathLike[str] | None = None) -> Path | None:
    """The weights file of a network in ``HOME/weights``, or None.

    The official file name is preferred; otherwise the first file of the same
    name stem (``alexnet-owt-*.pth``). Whether it is the official release is
    decided by :func:`check_weights`, from its content, each time it is used.
    """
    folder = data_home(home) / WEIGHTS_DIR
    spec = EVAL_NETS[key]
    if not folder.is_dir():
        return None
    candidates = sorted(p for p in folder.glob(spec.pattern) if p.is_file())
    official = [p for p in candidates if p.name == spec.file_name]
    found = official or candidates
    return found[0] if found else None


@dataclass(frozen=True)
class WeightsCheck:
    """What a weights file is: its SHA-256, and whether that is the published one.

    Attributes
    ----------
    file : str
        File name.
    sha256 : str
        Full SHA-256 of the file, computed when it was used.
    published : str or None
        The checksum the official release publishes (``"sha256 <hex>"`` or
        ``"sha256-prefix <hex>"``); None when none is published (SwAV).
    official : bool
        True only when ``sha256`` matched ``published``.
    """

    file: str
    sha256: str
    published: str | None
    official: bool

    def label(self, title: str) -> str:
        """``title (file)`` for the official release, else ``unverified: ...`` with the
        SHA-256 and why."""
        if self.official:
            return f"{title} ({self.file}, SHA-256 matches the published {self.published})"
        why = (
            f"does not match the published {self.published}"
            if self.published
            else "no checksum is published"
        )
        return f"unverified: {self.file}, SHA-256 {self.sha256} ({why}; not known to be {title})"

    def as_dict(self) -> dict[str, Any]:
        """For ``metrics.json``: file, sha256, published, status (official or unverified)."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "published": self.published,
            "status": "official" if self.official else "unverified",
        }


def check_weights(key: str, path: Path) -> WeightsCheck:
    """Hash ``path`` and compare it with the checksum the official release publishes.

    The file is hashed every time (a verification record of size and time, as the
    download keeps, cannot tell a replaced file from the release).
    """
    algorithm, digest = digest_of_url(EVAL_NETS[key].url)
    sha256 = file_digest(path, "sha256")
    official = digest is not None and (
        sha256.startswith(digest) if algorithm == "sha256-prefix" else sha256 == digest
    )
    published = f"{algorithm} {digest}" if digest else None
    return WeightsCheck(path.name, sha256, published, official)


def load_eval_net(key: str, path: Path, allow_code: bool = True) -> nn.Module:
    """The network ``key`` with the weights in ``path``, float32, in eval mode, frozen.

    ``allow_code=False`` refuses a TorchScript archive (OpenAI's CLIP format carries
    code): pass it for a file whose checksum did not match the release.

    Raises
    ------
    ModelFormatError
        The file cannot be read, or its keys or shapes do not fit the architecture
        (naming the first differences).
    """
    spec = EVAL_NETS[key]
    state = _read_state(spec, path, allow_code)
    if spec.kind == "swav":
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith(SWAV_HEAD_PREFIXES)}
    elif spec.kind == "clip":
        state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        if "conv1.weight" not in state:
            raise ModelFormatError(f"{path}: no 'visual.*' weights; expected OpenAI's {spec.url}")
    net = (
        VisionTransformer(ViTShape.from_state_dict(state)) if spec.kind == "clip" else spec.build()
    )
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    check_state_dict(net, state, f"{path} ({spec.title})")
    net.load_state_dict(state, strict=True)
    net.eval().requires_grad_(False)
    return net


def check_state_dict(net: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """Raise ModelFormatError naming missing, unexpected and mis-shaped keys."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or extra or shapes:
        parts = [
            f"{label} {items[:5]}{' ...' if len(items) > 5 else ''}"
            for label, items in (("missing", missing), ("unexpected", extra), ("shapes", shapes))
            if items
        ]
        raise ModelFormatError(
            f"{what}: the weights do not fit the architecture ({'; '.join(parts)}); "
            f"run `{DOWNLOAD_COMMAND} --force` to fetch the official file again"
        )


def _read_state(spec: EvalNetSpec, path: Path, allow_code: bool = True) -> dict[str, Tensor]:
    state: Any
    try:
        if spec.kind == "clip" and allow_code:
            state = _read_clip_archive(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ModelFormatError(
            f"{path}: cannot read the {spec.title} weights ({describe_load_error(err)}); "
            f"run `{DOWNLOAD_COMMAND} --force`"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFormatError(f"{path}: not a state dict of tensors ({spec.title})")
    return state


def _read_clip_archive(path: Path) -> dict[str, Tensor]:
    """OpenAI's release is a TorchScript archive; a plain state dict is read too.

    Only files whose SHA-256 matched the release reach this point (see
    :func:`load_eval_net`): a TorchScript archive carries code, so its checksum is
    what makes it trustworthy.
    """
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the file format
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:
        state: dict[str, Tensor] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    return dict(module.state_dict())
