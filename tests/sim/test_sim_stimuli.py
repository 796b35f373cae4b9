"""Stimuli of the simulated subject: determinism, novelty of test images, names and ids."""

from __future__ import annotations

import re

import numpy as np

from e2e_recon.data.labels import id_to_name, name_to_id
from e2e_recon.sim import stimuli


def test_natural_images_are_deterministic_and_named_like_imagenet() -> None:
    a = stimuli.natural_images("training", 12, 32, np.random.default_rng(3))
    b = stimuli.natural_images("training", 12, 32, np.random.default_rng(3))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
    assert a.ids.dtype == np.float64 and len(set(a.ids)) == 12
    for stim_id, name in zip(a.ids, a.names, strict=True):
        assert re.fullmatch(r"n\d{8}_\d+", name)
        assert name_to_id(name) == stim_id
    assert {"dead leaves"} < set(a.descriptions)
    c = stimuli.natural_images("training", 12, 32, np.random.default_rng(4))
    assert not np.array_equal(a.images, c.images)


def test_test_images_come_from_photographs_training_never_uses() -> None:
    train = stimuli.natural_images("training", 40, 32, np.random.default_rng(0))
    test = stimuli.natural_images("test", 20, 32, np.random.default_rng(1))
    assert not set(train.ids) & set(test.ids)
    test_photos = {name for _, name, split in stimuli.PHOTOS if split == "test"}
    train_photos = {name for _, name, split in stimuli.PHOTOS if split == "training"}
    used_by_test = {d.removeprefix("crop of ") for d in test.descriptions if d.startswith("crop")}
    used_by_train = {d.removeprefix("crop of ") for d in train.descriptions if d.startswith("crop")}
    assert used_by_test and used_by_test <= test_photos
    assert used_by_train and used_by_train <= train_photos


def test_shapes_are_5_by_8_on_grey_with_own_id_range() -> None:
    shapes = stimuli.artificial_shapes(32)
    assert shapes.images.shape == (40, 32, 32, 3)
    assert len(set(shapes.ids)) == 40
    assert all(91_000_000 < i < 91_000_006 for i in shapes.ids)
    corners = shapes.images[:, [0, -1]][:, :, [0, -1]].reshape(-1, 3).astype(int)
    assert np.abs(corners - 128).max() <= 10  # uniform grey background (JPEG ringing)
    assert np.median(corners) == 128
    red_square = shapes.images[shapes.descriptions.index("red square")]
    centre = red_square[16, 16].astype(int)
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60
    assert id_to_name(shapes.ids[0]) == "n91000001_1"


def test_letters_are_rendered_with_a_truetype_font() -> None:
    letters = stimuli.letters(32)
    assert letters.images.shape == (10, 32, 32, 3)
    assert [d[-1] for d in letters.descriptions] == list(stimuli.LETTERS)
    assert id_to_name(letters.ids[0]) == "n92000000_65"  # "A"
    dark = (letters.images.mean(axis=3) < 60).sum(axis=(1, 2))
    assert (dark > 10).all()  # every letter has ink
    flat = letters.images.reshape(10, -1).astype(float)
    assert len({tuple(np.round(r[::7])) for r in flat}) == 10  # all different
    large = stimuli.letters(64).images.mean(axis=3)  # (10, 64, 64)
    border = np.concatenate([large[:, :2].ravel(), large[:, -2:].ravel()])
    assert np.abs(border - 128).max() < 3  # large glyphs, but none clipped at the top/bottom
    ink_height = (large < 60).any(axis=2).sum(axis=1)
    assert (ink_height[[0, 3, 8]] > 0.55 * 64).all()  # A, I, T: cap height over half the side


def test_dead_leaves_have_many_colours_and_edges() -> None:
    palette = np.random.default_rng(0).integers(0, 256, size=(50, 3), dtype=np.uint8)
    image = stimuli.dead_leaves(np.random.default_rng(0), 48, palette)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20
