"""Natural-like images: crops of sample photographs and dead-leaves images.

The photographs ship inside installed packages (scikit-image's sample images,
matplotlib's sample data); a crop takes a random position and scale, maybe a
mirror image, and a mild colour jitter. Dead-leaves images are occluding shapes
with a power-law size distribution and colours drawn from the photographs.
:func:`e2e_recon.sim.stimuli.natural_images` mixes both into a stimulus set.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from e2e_recon.errors import DataError

__all__ = ["PHOTOS", "colour_palette", "dead_leaves", "load_photos", "photo_crop"]

#: Source photographs: (package, file name, split). "test" photographs never give
#: training images. Indices into this tuple are the synset suffixes, so append only.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("skimage", "astronaut.png", "training"),
    ("skimage", "coffee.png", "training"),
    ("skimage", "rocket.jpg", "training"),
    ("skimage", "motorcycle_left.png", "training"),
    ("skimage", "motorcycle_right.png", "training"),
    ("skimage", "hubble_deep_field.jpg", "training"),
    ("skimage", "retina.jpg", "training"),
    ("skimage", "ihc.png", "training"),
    ("skimage", "brick.png", "training"),
    ("skimage", "grass.png", "training"),
    ("skimage", "camera.png", "training"),
    ("skimage", "moon.png", "training"),
    ("skimage", "cell.png", "training"),
    ("skimage", "chelsea.png", "test"),
    ("matplotlib", "grace_hopper.jpg", "test"),
    ("skimage", "coins.png", "test"),
    ("skimage", "gravel.png", "test"),
    ("skimage", "clock_motion.png", "test"),
)


def _package_dir(package: str) -> Path:
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data"


@functools.lru_cache(maxsize=2)
def load_photos(split: str) -> dict[int, np.ndarray]:
    """Load the source photographs of one split as RGB uint8 arrays (cached; do not modify).

    Parameters
    ----------
    split : {"training", "test"}

    Returns
    -------
    dict
        Index in :data:`PHOTOS` -> array (H, W, 3) uint8. Missing files are skipped.

    Raises
    ------
    DataError
        If fewer than two photographs of the split can be read.
    """
    photos: dict[int, np.ndarray] = {}
    for index, (package, name, photo_split) in enumerate(PHOTOS):
        path = _package_dir(package) / name
        if photo_split != split or not path.is_file():
            continue
        with Image.open(path) as image:
            photos[index] = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if len(photos) < 2:
        raise DataError(
            f"Found only {len(photos)} {split} photographs among the sample images of "
            "scikit-image and matplotlib; reinstall scikit-image (>= 0.21) and matplotlib."
        )
    return photos


def _colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild brightness, contrast, saturation and channel-gain jitter; RGB uint8 in and out."""
    x = image.astype(np.float32) / 255.0  # (S, S, 3)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.7, 1.3)  # saturation
    x = x.mean() + (x - x.mean()) * rng.uniform(0.8, 1.2)  # contrast
    x = x * rng.uniform(0.85, 1.15) * (1.0 + rng.normal(0.0, 0.04, size=3))  # brightness, tint
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def photo_crop(photo: np.ndarray, rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A random square crop (scale 35-100% of the short side), maybe mirrored, jittered.

    Parameters
    ----------
    photo : ndarray, shape (H, W, 3), uint8
    rng : numpy Generator
    size_px : int
        Output side length.

    Returns
    -------
    ndarray, shape (size_px, size_px, 3), uint8, RGB
    """
    height, width = photo.shape[:2]
    side = rng.uniform(0.35, 1.0) * min(height, width)
    x0 = rng.uniform(0.0, width - side)
    y0 = rng.uniform(0.0, height - side)
    box = (x0, y0, x0 + side, y0 + side)
    # Pillow's resize filters widen with the scale factor, so this is anti-aliased.
    crop = Image.fromarray(photo).resize((size_px, size_px), Image.Resampling.BICUBIC, box=box)
    pixels = np.asarray(crop, dtype=np.uint8)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return _colour_jitter(np.ascontiguousarray(pixels), rng)


def colour_palette(photos: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Colours sampled from photographs, for dead-leaves images: (K, 3) uint8."""
    samples = []
    for index in sorted(photos):
        flat = photos[index].reshape(-1, 3)
        samples.append(flat[rng.integers(0, len(flat), size=512)])
    return np.concatenate(samples)


_LEAF_ANGLES = tuple(np.arange(n) / n * 2 * np.pi for n in (48, 4, 3))  # ellipse, quad, tri


def _leaf_outlines(rng: np.random.Generator, radii: np.ndarray, canvas_px: int) -> list:
    """Outlines of all leaves (rotated ellipses, quadrilaterals, triangles) as flat
    [x0, y0, x1, y1, ...] lists; random parameters drawn for all leaves at once."""
    n = len(radii)
    kinds = rng.integers(3, size=n)
    phases = rng.uniform(0, 2 * np.pi, size=n)
    corner_jitter = rng.normal(0.0, 0.15, size=(n, 4))  # quads are not only squares
    aspects = rng.uniform(0.4, 1.0, size=n)
    tilts = rng.uniform(0, np.pi, size=n)
    centres = rng.uniform(-0.1, 1.1, size=(n, 2)) * canvas_px
    outlines = []
    for i in range(n):
        angles = _LEAF_ANGLES[kinds[i]] + phases[i]
        if kinds[i] == 1:
            angles = angles + corner_jitter[i]
        x = radii[i] * np.cos(angles)
        y = radii[i] * aspects[i] * np.sin(angles)
        cos_t, sin_t = np.cos(tilts[i]), np.sin(tilts[i])
        points = np.stack(
            [centres[i, 0] + x * cos_t - y * sin_t, centres[i, 1] + x * sin_t + y * cos_t], 1
        )
        outlines.append(points.ravel().tolist())
    return outlines


def dead_leaves(
    rng: np.random.Generator, size_px: int, palette: np.ndarray, n_leaves: int = 250
) -> np.ndarray:
    """A dead-leaves image: occluding shapes with power-law sizes (p(r) ~ r^-3).

    The r^-3 law makes the image statistically scale invariant, like natural images;
    colours come from ``palette`` (sampled from photographs) with a little jitter.

    Parameters
    ----------
    rng : numpy Generator
    size_px : int
    palette : ndarray, shape (K, 3), uint8
    n_leaves : int

    Returns
    -------
    ndarray, shape (size_px, size_px, 3), uint8, RGB
    """
    canvas_px = 2 * size_px  # drawn at twice the size, then downsampled: anti-aliased edges
    background = palette[rng.integers(len(palette))]
    canvas = Image.new("RGB", (canvas_px, canvas_px), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(canvas)
    r_min, r_max, alpha = 0.04 * canvas_px, 0.5 * canvas_px, 3.0
    u = rng.random(n_leaves)
    low, high = r_min ** (1 - alpha), r_max ** (1 - alpha)
    radii = (low - u * (low - high)) ** (1 / (1 - alpha))  # inverse CDF of the power law
    colours = palette[rng.integers(len(palette), size=n_leaves)].astype(np.float64)
    colours = colours * rng.uniform(0.9, 1.1, size=(n_leaves, 1))
    colours = np.clip(colours + rng.normal(0, 6, size=(n_leaves, 3)), 0, 255).astype(int)
    # Random order: a late large leaf occludes earlier small ones.
    for outline, colour in zip(
        _leaf_outlines(rng, radii, canvas_px), colours.tolist(), strict=True
    ):
        draw.polygon(outline, fill=tuple(colour))
    small = canvas.resize((size_px, size_px), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)
