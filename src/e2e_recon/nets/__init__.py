"""The three networks of the model: generator, comparators and discriminator.

The loaders accept released Caffe files (``.caffemodel``) or the project's ``.pt``.
"""

from __future__ import annotations

from e2e_recon.nets.loading import load_comparator, load_discriminator, load_generator

__all__ = ["load_comparator", "load_discriminator", "load_generator"]
