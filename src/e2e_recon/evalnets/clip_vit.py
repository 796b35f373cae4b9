"""CLIP's vision transformer (the image tower of OpenAI's ``ViT-L/14``).

Follows ``clip/model.py`` of openai/CLIP: patch convolution without bias, class
token, learned positions, ``ln_pre``, residual attention blocks (torch's
``nn.MultiheadAttention``, an MLP ``c_fc`` -> QuickGELU -> ``c_proj``), ``ln_post``
on the class token and the projection ``proj``. Its parameters carry the names of
the ``visual.*`` entries of OpenAI's checkpoint with the prefix removed. The
shape is read from the weights as CLIP's ``build_model`` does, so the same class
holds ViT-L/14 (width 1024, 24 blocks, 16 heads, patch 14, 224 px, 768-d output)
or a small test instance.

OpenAI's file is a TorchScript archive holding half-precision weights; the
benchmark computes in float32 on the CPU (``clip.load`` casts to float there),
which is what :func:`e2e_recon.evalnets.registry.load_eval_net` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Input normalisation of CLIP (RGB in 0-1).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ViTShape:
    """Size of a CLIP vision transformer."""

    width: int = 1024
    layers: int = 24
    patch_size: int = 14
    input_resolution: int = 224
    output_dim: int = 768

    @property
    def heads(self) -> int:
        return self.width // 64

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> ViTShape:
        """The shape of the network whose weights are ``state`` (keys without ``visual.``)."""
        conv = state["conv1.weight"]  # (width, 3, patch, patch)
        grid = round((state["positional_embedding"].shape[0] - 1) ** 0.5)
        layers = sum(1 for k in state if k.endswith(".attn.in_proj_weight"))
        return cls(
            width=int(conv.shape[0]),
            layers=layers,
            patch_size=int(conv.shape[-1]),
            input_resolution=int(conv.shape[-1]) * grid,
            output_dim=int(state["proj"].shape[1]),
        )


class QuickGELU(nn.Module):
    """CLIP's GELU approximation, x * sigmoid(1.702 x)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block (no attention mask in the image tower)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        # x: (L, B, width), sequence first as nn.MultiheadAttention expects by default.
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks (``resblocks.0`` ...)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads) for _ in range(layers)]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """CLIP's image encoder: (B, 3, R, R) CLIP-normalised RGB -> (B, output_dim) embedding.

    The embedding is what ``CLIP.encode_image`` returns (not L2-normalised).
    """

    def __init__(self, shape: ViTShape | None = None) -> None:
        super().__init__()
        shape = shape or ViTShape()
        self.shape = shape
        width, grid = shape.width, shape.input_resolution // shape.patch_size
        self.conv1 = nn.Conv2d(3, width, shape.patch_size, stride=shape.patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid**2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, shape.layers, shape.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, shape.output_dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x)  # (B, width, grid, grid)
        h = h.flatten(2).permute(0, 2, 1)  # (B, grid**2, width)
        cls = self.class_embedding.to(h.dtype).expand(h.shape[0], 1, -1)  # (B, 1, width)
        h = torch.cat([cls, h], dim=1) + self.positional_embedding.to(h.dtype)  # (B, L, width)
        h = self.ln_pre(h)
        h = self.transformer(h.permute(1, 0, 2)).permute(1, 0, 2)  # (B, L, width)
        return self.ln_post(h[:, 0, :]) @ self.proj  # (B, output_dim)
