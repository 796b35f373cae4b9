"""The NSD benchmark's eight numbers, as its published evaluation code computes them.

Source of every definition: MindEye (Scotti et al. 2023), MedARC-AI/fMRI-reconstruction-NSD,
``src/Reconstruction_Metrics.py``; MindEye2 and Brain-Diffuser report the same
eight columns. Images enter as RGB in 0-1 (``/ 255``). As in that notebook, both
reconstructions and stimuli are first resized to 256 x 256
(``transforms.Resize((256, 256))``), and every metric starts from those images.
Every resize is bilinear (torchvision ``Resize`` on tensors); the notebook's
torchvision 0.14.1 did not antialias, current torchvision does when shrinking:
``resize="antialias"`` (default) does, ``resize="notebook"`` reproduces the notebook.

============  ================================================================================
PixCorr       both 256 px images resized to 425 px; Pearson r of the flattened RGB pixels of each
              reconstruction with its stimulus; mean over images
SSIM          resized to 425 px, ``skimage.color.rgb2gray``, ``structural_similarity`` with
              Gaussian weights (sigma 1.5), ``use_sample_covariance=False``, ``data_range=1``
AlexNet(2)    torchvision AlexNet (IMAGENET1K_V1) ``features.4`` (conv2 after ReLU), input
              256 px, ImageNet normalisation; two-way identification
AlexNet(5)    the same network, ``features.11`` (conv5 after ReLU)
Inception     torchvision Inception-v3 (IMAGENET1K_V1, ``transform_input``) ``avgpool``,
              342 px; two-way identification
CLIP          OpenAI CLIP ViT-L/14 ``encode_image`` output, 224 px, CLIP normalisation;
              two-way identification
EffNet-B      torchvision EfficientNet-B1 (IMAGENET1K_V2) ``avgpool``, 255 px; mean
              correlation distance (``scipy.spatial.distance.correlation``), lower is better
SwAV          ResNet-50 trained with SwAV (facebookresearch/swav hub ``resnet50``) ``avgpool``,
              224 px; mean correlation distance, lower is better
============  ================================================================================

Two-way identification (the benchmark's ``two_way_identification``): for each
reconstruction, the fraction of the other stimuli whose features correlate less
with the reconstruction's features than its own stimulus's do; the mean over
reconstructions. Published tables print it as a percentage.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from e2e_recon.errors import ConfigError
from e2e_recon.evalnets.clip_vit import CLIP_MEAN, CLIP_STD
from e2e_recon.evalnets.extract import Preprocess, module_features, resize_bilinear
from e2e_recon.evalnets.inception import IMAGENET_MEAN, IMAGENET_STD
from e2e_recon.evaluate.identification import (
    correlation_distance,
    pairwise_from_similarity,
    similarity_matrix,
)
from e2e_recon.evaluate.metrics import pixcorr, ssim_scores
from e2e_recon.evaluate.suite_common import (
    NetSource,
    SuiteGroup,
    by_set_indices,
    mean_or_none,
    score_text,
)

SOURCE = (
    "MindEye evaluation code (MedARC-AI/fMRI-reconstruction-NSD, src/Reconstruction_Metrics.py)"
)
PIXEL_SIZE_PX = 425
#: The notebook resizes every image to this (both sides) before any metric.
FIRST_SIZE_PX = 256
#: ``antialias``: antialias when shrinking (torchvision >= 0.17); ``notebook``: never,
#: as the notebook's torchvision 0.14.1 (its environment.yaml) resized tensors.
RESIZE_MODES = ("antialias", "notebook")


@dataclass(frozen=True)
class NsdColumn:
    """One published column: its key, title, and how it is computed."""

    key: str
    label: str
    kind: str  # "pixel", "two_way" or "distance"
    net: str | None = None
    node: str | None = None
    preprocess: Preprocess | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "distance"


def _imagenet(size_px: int) -> Preprocess:
    return Preprocess(size_px, IMAGENET_MEAN, IMAGENET_STD)


COLUMNS: tuple[NsdColumn, ...] = (
    NsdColumn("pixcorr", "PixCorr", "pixel"),
    NsdColumn("ssim", "SSIM", "pixel"),
    NsdColumn("alexnet2", "AlexNet(2)", "two_way", "alexnet", "features.4", _imagenet(256)),
    NsdColumn("alexnet5", "AlexNet(5)", "two_way", "alexnet", "features.11", _imagenet(256)),
    NsdColumn("inception", "Inception", "two_way", "inception_v3", "avgpool", _imagenet(342)),
    NsdColumn("clip", "CLIP", "two_way", "clip_vit_l14", "", Preprocess(224, CLIP_MEAN, CLIP_STD)),
    NsdColumn("effnet", "EffNet-B", "distance", "efficientnet_b1", "avgpool", _imagenet(255)),
    NsdColumn("swav", "SwAV", "distance", "swav_resnet50", "avgpool", _imagenet(224)),
)
#: The networks in the order they are loaded (one at a time).
NETS = tuple(dict.fromkeys(c.net for c in COLUMNS if c.net is not None))


def run_nsd(
    groups: list[SuiteGroup], nets: NetSource, batch_size: int = 16, resize: str = "antialias"
) -> dict[str, Any]:
    """The NSD table of every (set, method).

    Parameters
    ----------
    groups : list of SuiteGroup
    nets : NetSource
        Where the networks come from; a missing one leaves its columns None.
    batch_size : int
    resize : {"antialias", "notebook"}
        Whether shrinking resizes antialias (see :data:`RESIZE_MODES`).

    Returns
    -------
    dict
        ``source``, ``protocol`` (see :func:`protocol`), ``columns`` (key, label,
        higher_is_better, identification), ``networks`` (key -> what was used),
        ``weights`` (key -> file, sha256, status), ``missing`` (key -> how to get
        it) and ``rows`` (set, method, n_images, scores: key -> mean or None).
    """
    if resize not in RESIZE_MODES:
        raise ConfigError(f"--nsd-resize {resize!r}: choose from {', '.join(RESIZE_MODES)}")
    antialias = resize == "antialias"
    groups = [first_resize(g, antialias) for g in groups]
    scores: list[dict[str, float | None]] = [_pixel_scores(g, antialias) for g in groups]
    for key in NETS:
        columns = [c for c in COLUMNS if c.net == key]
        with nets.open(key) as net:
            for column in columns:
                for row in scores:
                    row[column.key] = None
            if net is None:
                continue
            for indices in by_set_indices(groups).values():
                for column in columns:
                    assert column.preprocess is not None and column.node is not None
                    features = functools.partial(
                        module_features, net, nodes=[column.node],
                        preprocess=replace(column.preprocess, antialias=antialias),
                        device=nets.device, batch_size=batch_size,
                    )  # fmt: skip
                    true = features(groups[indices[0]].stimuli)[column.node]  # (N, D)
                    for i in indices:
                        pred = features(groups[i].recons)[column.node]  # (N, D)
                        scores[i][column.key] = _feature_score(column, pred, true)
    return {
        "source": SOURCE,
        "protocol": protocol(resize),
        "columns": [
            {
                "key": c.key,
                "label": c.label,
                "higher_is_better": c.higher_is_better,
                "identification": c.kind == "two_way",
            }
            for c in COLUMNS
        ],
        "networks": dict(nets.used),
        "weights": {k: v for k, v in nets.weights.items() if k in NETS},
        "missing": {k: v for k, v in nets.missing.items() if k in NETS},
        "rows": [
            {"set": g.set_name, "method": g.method, "n_images": len(g.recons), "scores": s}
            for g, s in zip(groups, scores, strict=True)
        ],
    }


def first_resize(group: SuiteGroup, antialias: bool = True) -> SuiteGroup:
    """Both image sets at 256 x 256, the notebook's first step before any metric."""
    return replace(
        group,
        recons=resize_bilinear(group.recons, FIRST_SIZE_PX, antialias),  # (N, 256, 256, 3)
        stimuli=resize_bilinear(group.stimuli, FIRST_SIZE_PX, antialias),
    )


def protocol(resize: str) -> dict[str, Any]:
    """How the numbers were computed where that is a choice: the resize mode, the
    deliberate differences from the notebook, and the library versions."""
    differences = [
        "CLIP ViT-L/14 runs in float32; the notebook loaded it with clip.load on a GPU, "
        "which runs it in float16",
        "scores are over the images of each set in the folder; the published tables are "
        "over NSD's 982 shared test images",
    ]
    if resize == "antialias":
        differences.insert(
            0,
            "resizes antialias when shrinking (torchvision >= 0.17 default); the notebook's "
            "torchvision 0.14.1 did not (--nsd-resize notebook reproduces it)",
        )
    return {
        "first_resize_px": FIRST_SIZE_PX,
        "resize": resize,
        "antialias": resize == "antialias",
        "differences_from_notebook": differences,
        "versions": {
            "torch": torch.__version__,
            "scikit-image": importlib.metadata.version("scikit-image"),
            "numpy": np.__version__,
        },
    }


def _pixel_scores(group: SuiteGroup, antialias: bool = True) -> dict[str, float | None]:
    """PixCorr and SSIM at 425 px, from the 256 px images."""
    pred = resize_bilinear(group.recons, PIXEL_SIZE_PX, antialias)  # (N, 425, 425, 3), 0-255
    true = resize_bilinear(group.stimuli, PIXEL_SIZE_PX, antialias)
    return {
        "pixcorr": mean_or_none(pixcorr(pred, true)),
        "ssim": mean_or_none(ssim_scores(pred, true, data_range=255.0, greyscale=True)),
    }


def _feature_score(column: NsdColumn, pred: np.ndarray, true: np.ndarray) -> float | None:
    if column.kind == "two_way":
        return mean_or_none(pairwise_from_similarity(similarity_matrix(pred, true)))
    return mean_or_none(correlation_distance(pred, true))


def nsd_cell(column: dict[str, Any], value: float | None) -> str:
    """A value as published tables print it: identification in %, others to 3 decimals."""
    return score_text(value, bool(column.get("identification")))
