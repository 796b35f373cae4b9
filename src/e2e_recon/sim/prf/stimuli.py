"""Stimuli of the pRF simulator family: colour patterns and procedural digits.

Two families, float RGB in [0, 1] of shape (S, S, 3):

- ``mixed``: colour shapes, gratings (some in a circular aperture), Gabor-like blobs,
  checkerboards and plaids, in equal numbers;
- ``digits``: the digits 0-9 drawn from stroke skeletons with jittered position, size,
  rotation, slant, thickness, ink and background, light on dark (three equal channels).

Shapes and digits are drawn with Pillow at 4x and reduced, so their edges are smooth.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

COLOUR_KINDS = ("shapes", "gratings", "gabors", "checkerboards", "plaids")
#: Made-up synsets of the stimulus ids: one per colour kind, ``DIGIT_SYNSET + d`` for digit d.
COLOUR_SYNSET = {kind: 9100001 + i for i, kind in enumerate(COLOUR_KINDS)}
DIGIT_SYNSET = 9200000


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in image widths, centred on 0: x, y each (S, S)."""
    c = (np.arange(size) + 0.5) / size - 0.5
    return np.meshgrid(c, c)


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, 3)


def _wave(rng: np.random.Generator, size: int, cycles: tuple[float, float]) -> np.ndarray:
    """An oriented sinusoid (or square wave) in [-1, 1], (S, S)."""
    x, y = grid(size)
    theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    freq = rng.uniform(*cycles)
    wave = np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)
    return np.sign(wave) if rng.random() < 0.3 else wave


def _gratings(rng: np.random.Generator, size: int) -> np.ndarray:
    wave = (_wave(rng, size, (1.5, 8.0)) + 1) / 2
    a, b = _colour(rng), _colour(rng)
    img = a * wave[..., None] + b * (1 - wave[..., None])
    if rng.random() < 0.5:  # circular aperture over a uniform surround
        x, y = grid(size)
        inside = np.hypot(x - rng.uniform(-0.2, 0.2), y - rng.uniform(-0.2, 0.2))
        img = np.where((inside < rng.uniform(0.15, 0.45))[..., None], img, _colour(rng))
    return img


def _plaids(rng: np.random.Generator, size: int) -> np.ndarray:
    base = _colour(rng)
    img = base + 0.25 * _wave(rng, size, (1.5, 6.0))[..., None] * rng.uniform(-1, 1, 3)
    return img + 0.25 * _wave(rng, size, (1.5, 6.0))[..., None] * rng.uniform(-1, 1, 3)


def _gabors(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = grid(size)
    img = np.broadcast_to(_colour(rng), (size, size, 3)).copy()
    for _ in range(rng.integers(1, 5)):
        cx, cy, sigma = rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35), rng.uniform(0.04, 0.15)
        envelope = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        img += 0.45 * (envelope * _wave(rng, size, (3.0, 12.0)))[..., None] * rng.uniform(-1, 1, 3)
    return img


def _checkerboards(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = grid(size)
    theta, freq = rng.uniform(0, np.pi / 2), rng.uniform(1.5, 6.0)
    u, v = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    checks = np.sin(2 * np.pi * freq * u + rng.uniform(0, 6)) * np.sin(2 * np.pi * freq * v)
    a, b = _colour(rng), _colour(rng)
    return np.where((checks > 0)[..., None], a, b)


def _shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    big = 4 * size  # drawn at 4x and reduced: anti-aliased edges
    img = Image.new("RGB", (big, big), tuple(int(255 * c) for c in _colour(rng)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(1, 5)):
        fill = tuple(int(255 * c) for c in _colour(rng))
        cx, cy = rng.uniform(0.15, 0.85, 2) * big
        r = rng.uniform(0.08, 0.3) * big
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([cx - r, cy - r * rng.uniform(0.5, 1), cx + r, cy + r], fill=fill)
        elif kind == 1:
            draw.rectangle([cx - r, cy - r * rng.uniform(0.3, 1), cx + r, cy + r], fill=fill)
        else:
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = r * rng.uniform(0.5, 1, n)
            points = [
                (cx + q * np.cos(a), cy + q * np.sin(a)) for a, q in zip(angles, radii, strict=True)
            ]
            draw.polygon(points, fill=fill)
    small = img.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list:
    """Points of an elliptical arc from angle a0 to a1 (degrees; 0 = right, 90 = down)."""
    angles = np.radians(np.linspace(a0, a1, max(8, int(abs(a1 - a0) / 10))))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


#: Stroke skeletons of the digits in a unit box (x right, y down), one list per stroke.
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.28, 0.4, 0, 360)],
    1: [[(0.35, 0.25), (0.55, 0.1), (0.55, 0.9)]],
    2: [[*_arc(0.5, 0.32, 0.25, 0.22, 190, 380), (0.22, 0.9), (0.8, 0.9)]],
    3: [_arc(0.48, 0.3, 0.22, 0.2, 200, 450), _arc(0.48, 0.7, 0.25, 0.2, 270, 520)],
    4: [[(0.65, 0.9), (0.65, 0.1), (0.2, 0.65), (0.85, 0.65)]],
    5: [[(0.75, 0.1), (0.32, 0.1), (0.28, 0.45), *_arc(0.5, 0.65, 0.26, 0.25, 230, 505)]],
    6: [[(0.68, 0.1), (0.42, 0.3), *_arc(0.5, 0.67, 0.24, 0.23, 220, 580)]],
    7: [[(0.2, 0.1), (0.8, 0.1), (0.42, 0.9)]],
    8: [_arc(0.5, 0.3, 0.19, 0.19, 0, 360), _arc(0.5, 0.7, 0.23, 0.21, 0, 360)],
    9: [_arc(0.5, 0.33, 0.23, 0.22, 0, 360), [(0.73, 0.33), (0.62, 0.9)]],
}


def _digit(rng: np.random.Generator, size: int, digit: int) -> np.ndarray:
    """One digit, white strokes on black, jittered like handwriting; (S, S, 3) equal channels."""
    big = 4 * size
    scale, angle = rng.uniform(0.6, 0.85), np.radians(rng.uniform(-12, 12))
    slant, shift = rng.uniform(-0.35, 0.2), rng.uniform(-0.08, 0.08, 2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = rot @ np.array([[1.0, slant], [0.0, 1.0]]) * scale
    width = int(big * rng.uniform(0.06, 0.13))
    img = Image.new("L", (big, big), int(rng.integers(0, 25)))
    draw = ImageDraw.Draw(img)
    ink = int(rng.integers(200, 256))
    for stroke in DIGIT_STROKES[digit]:
        pts = np.asarray(stroke) - 0.5
        pts = pts + rng.normal(0, 0.012, pts.shape)  # a wobbly hand
        xy = (pts @ affine.T + 0.5 + shift) * big
        draw.line([tuple(p) for p in xy], fill=ink, width=width, joint="curve")
        for p in (xy[0], xy[-1]):  # round caps
            draw.ellipse(
                [p[0] - width / 2, p[1] - width / 2, p[0] + width / 2, p[1] + width / 2], ink
            )
    grey = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0
    return np.repeat(grey[..., None], 3, axis=2)


def make_stimuli(family: str, n: int, size: int, rng: np.random.Generator) -> tuple:
    """``n`` images (n, S, S, 3) float in [0, 1], their kinds and synsets."""
    if family == "digits":
        digits = rng.permutation(np.arange(n) % 10)
        images = [_digit(rng, size, int(d)) for d in digits]
        return np.stack(images), [f"digit {d}" for d in digits], [DIGIT_SYNSET + d for d in digits]
    if family != "mixed":
        raise ValueError(f"family {family!r}: choose 'mixed' or 'digits'.")
    makers = {"shapes": _shapes, "gratings": _gratings, "gabors": _gabors}
    makers.update(checkerboards=_checkerboards, plaids=_plaids)
    kinds = [COLOUR_KINDS[k] for k in rng.permutation(np.arange(n) % len(COLOUR_KINDS))]
    stack = np.stack([np.clip(makers[k](rng, size), 0, 1) for k in kinds])
    return stack, kinds, [COLOUR_SYNSET[k] for k in kinds]
