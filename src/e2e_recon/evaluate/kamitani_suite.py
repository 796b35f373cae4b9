"""The Kamitani lab's analyses: identification on pixels and on DNN features.

Definitions follow the lab's bdpy (KamitaniLab/bdpy, ``bdpy/evals/metrics.py``,
``pairwise_identification``): a reconstruction is compared with its own stimulus
and with every other stimulus of the set; the score is the fraction of the others
that are less similar to it than its own (ties fail), chance 50%. Similarity is
Pearson correlation (bdpy's default ``metric="correlation"``) or minus the
Euclidean distance (``metric="euclidean"``), in one of these feature spaces:

- ``pixel``: the RGB values of the images at the reconstructions' size;
- ``alexnet/conv1`` ... ``alexnet/fc8``: torchvision AlexNet (IMAGENET1K_V1),
  conv and fc6/fc7 after their ReLU, fc8 before the softmax, as the lab reads
  its Caffe networks (in-place ReLUs);
- ``vgg19/conv1_2`` ... ``vgg19/fc8``: torchvision VGG19, the last convolution of
  each block and the three fully connected layers.

Network input: 224 px (bilinear) and ImageNet normalisation, the input of the
torchvision weights. The lab's published numbers use its Caffe conversions of
the same architectures, so DNN-feature scores are comparable in kind, not to
the digit.

n-way identification: the own stimulus against n - 1 distractors drawn from a
pool (images the user gives, else the other stimuli of the set), correlation of
the same features; the exact mean over all draws (see
:func:`e2e_recon.evaluate.identification.nway_identification`); chance 1 / n.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from e2e_recon.evalnets.convnets import VGG19, AlexNet
from e2e_recon.evalnets.extract import Preprocess, module_features
from e2e_recon.evalnets.inception import IMAGENET_MEAN, IMAGENET_STD
from e2e_recon.evaluate.identification import (
    nway_identification,
    pairwise_from_similarity,
    similarity_matrix,
)
from e2e_recon.evaluate.suite_common import NetSource, SuiteGroup, by_set_indices, mean_or_none

SOURCE = "bdpy (KamitaniLab/bdpy, bdpy/evals/metrics.py: pairwise_identification)"
DEFAULT_N_WAY = (2, 5, 10)
ALEXNET_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
VGG19_LAYERS = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4", "fc6", "fc7", "fc8")
NETWORK_LAYERS: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    "alexnet": ("AlexNet", AlexNet.LAYERS, ALEXNET_LAYERS),
    "vgg19": ("VGG19", VGG19.LAYERS, VGG19_LAYERS),
}
PREPROCESS = Preprocess(224, IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class Distractors:
    """Images for n-way identification, prepared like the stimuli of each set.

    Attributes
    ----------
    images : dict
        Reconstruction size (px) -> (M, S, S, 3) RGB 0-255.
    source : str
        Where they come from (a folder), for the report.
    names : tuple of str
        File name stems, in the order of the images; a distractor named like a
        stimulus of the set is left out of that set's pool (it would be the target).
    """

    images: dict[int, np.ndarray]
    source: str
    names: tuple[str, ...] = ()


def analyses(n_way: Sequence[int]) -> list[dict[str, Any]]:
    """The columns of the table: pairwise (correlation, Euclidean), then each n-way."""
    columns = [
        {"key": "pairwise_corr", "label": "Pairwise (corr.)", "chance": 0.5},
        {"key": "pairwise_euclid", "label": "Pairwise (Eucl.)", "chance": 0.5},
    ]
    columns += [{"key": f"{n}way", "label": f"{n}-way (corr.)", "chance": 1 / n} for n in n_way]
    return columns


def run_kamitani(
    groups: list[SuiteGroup],
    nets: NetSource,
    n_way: Sequence[int] = DEFAULT_N_WAY,
    distractors: Distractors | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """The lab's identification analyses of every (set, method).

    Returns
    -------
    dict
        ``source``, ``analyses`` (columns), ``feature_spaces`` (key, label),
        ``networks``, ``missing``, ``distractors`` (source, count) and ``rows`` (set,
        method, n_images, scores: feature space -> analysis -> mean or None).
    """
    scores: list[dict[str, dict[str, float | None]]] = [{} for _ in groups]
    spaces = [{"key": "pixel", "label": "Pixels"}]
    for i, group in enumerate(groups):
        pool = _pool(distractors, group)
        scores[i]["pixel"] = _analyse(group.recons, group.stimuli, pool, n_way)
    for key, (title, names, layers) in NETWORK_LAYERS.items():
        spaces += [{"key": f"{key}/{layer}", "label": f"{title} {layer}"} for layer in layers]
        nodes = [names[layer] for layer in layers]
        with nets.open(key) as net:
            for i in range(len(groups)):
                scores[i].update({f"{key}/{layer}": {} for layer in layers})
            if net is None:
                continue
            features = functools.partial(
                module_features, net, nodes=nodes, preprocess=PREPROCESS, device=nets.device,
                batch_size=batch_size,
            )  # fmt: skip
            for indices in by_set_indices(groups).values():
                true = features(groups[indices[0]].stimuli)  # node -> (N, D)
                for i in indices:
                    pred = features(groups[i].recons)
                    pool = _pool(distractors, groups[i])
                    pool_feats = None if pool is None else features(pool)  # node -> (M, D)
                    for layer, node in zip(layers, nodes, strict=True):
                        pool_layer = None if pool_feats is None else pool_feats[node]
                        scores[i][f"{key}/{layer}"] = _analyse(
                            pred[node], true[node], pool_layer, n_way
                        )
    return {
        "source": SOURCE,
        "analyses": analyses(n_way),
        "feature_spaces": spaces,
        "networks": dict(nets.used),
        "weights": dict(nets.weights),
        "missing": {k: v for k, v in nets.missing.items() if k in NETWORK_LAYERS},
        "distractors": {
            "source": distractors.source if distractors else "the other stimuli of the set",
            "count": None if distractors is None else _count(distractors),
        },
        "rows": [
            {"set": g.set_name, "method": g.method, "n_images": len(g.recons), "scores": s}
            for g, s in zip(groups, scores, strict=True)
        ],
    }


def _count(distractors: Distractors) -> int:
    return len(next(iter(distractors.images.values()))) if distractors.images else 0


def _pool(distractors: Distractors | None, group: SuiteGroup) -> np.ndarray | None:
    """The group's distractor images (its own stimuli left out), or None."""
    if distractors is None:
        return None
    images = distractors.images[int(group.recons.shape[1])]
    names = distractors.names or ("",) * len(images)
    keep = [i for i, name in enumerate(names) if name not in set(group.names)]
    return images if len(keep) == len(images) else images[keep]


def _analyse(
    pred: np.ndarray, true: np.ndarray, pool: np.ndarray | None, n_way: Sequence[int]
) -> dict[str, float | None]:
    """Pairwise identification (correlation, Euclidean) and n-way identification.

    ``pred``, ``true``: (N, ...) one row per image; ``pool``: (M, ...) distractors,
    or None to draw them from the other rows of ``true``.
    """
    corr = similarity_matrix(pred, true, "correlation")  # (N, N)
    out = {
        "pairwise_corr": mean_or_none(pairwise_from_similarity(corr)),
        "pairwise_euclid": mean_or_none(
            pairwise_from_similarity(similarity_matrix(pred, true, "euclidean"))
        ),
    }
    own = np.diag(corr)  # (N,)
    if pool is None:
        n = len(corr)
        others = corr[~np.eye(n, dtype=bool)].reshape(n, n - 1)  # (N, N-1)
    else:
        others = similarity_matrix(pred, pool, "correlation")  # (N, M)
    for n_alt in n_way:
        out[f"{n_alt}way"] = mean_or_none(nway_identification(own, others, n_alt))
    return out
