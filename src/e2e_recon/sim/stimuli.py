"""Stimuli of the simulated subject: natural-like images, artificial shapes, letters.

Natural-like images are random crops (position, scale, mirror, mild colour jitter)
of real photographs that ship inside installed packages (scikit-image's sample
images, matplotlib's sample data), mixed with procedurally drawn "dead leaves"
images (occluding shapes with a power-law size distribution and colours drawn from
photographs). Test images come from photographs that training never uses, and
their dead-leaves images from a separate random stream, so every test image is novel.

The pixels of natural-like images come from :mod:`e2e_recon.sim.photos`.

Names and ids follow the dataset's convention ``n<8-digit synset>_<number>`` with a
float64 id ``synset.number``. The simulated synsets lie above every real WordNet
offset, so a simulated image can never be mistaken for an ImageNet one:

- ``901000xx``: crops of source photograph ``xx`` (index in :data:`PHOTOS`)
- ``90200000``: dead-leaves images
- ``9100000s``: artificial shape ``s`` (1-5), image number = colour (1-8)
- ``92000000``: letters, image number = the letter's character code (``A`` = 65)

Every image is stored as JPEG; the arrays returned here are the decoded JPEGs, so the
simulated brain sees exactly the pixels that a reader of the files gets.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from e2e_recon.data.labels import id_to_name
from e2e_recon.errors import DataError
from e2e_recon.sim.photos import PHOTOS, colour_palette, dead_leaves, load_photos, photo_crop

__all__ = [
    "COLOURS",
    "LETTERS",
    "PHOTOS",
    "SHAPES",
    "StimulusSet",
    "artificial_shapes",
    "dead_leaves",
    "letters",
    "load_photos",
    "natural_images",
    "photo_crop",
]

#: The five artificial shapes, in id order (synset 91000001 ... 91000005).
SHAPES: tuple[str, ...] = ("square", "small frame", "large frame", "plus", "cross")
#: The eight shape colours (RGB), in id order (image number 1 ... 8).
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (255, 0, 0)),
    ("green", (0, 255, 0)),
    ("blue", (0, 0, 255)),
    ("cyan", (0, 255, 255)),
    ("magenta", (255, 0, 255)),
    ("yellow", (255, 255, 0)),
    ("white", (255, 255, 255)),
    ("black", (0, 0, 0)),
)
#: Letter font size and extra stroke width, as fractions of the image side.
LETTER_SIZE = 0.9
LETTER_STROKE = 0.025
BLACK = (0, 0, 0)

#: The ten letters of the letter session.
LETTERS: str = "ACEINORSTU"

PHOTO_SYNSET = 90_100_000
DEAD_LEAVES_SYNSET = 90_200_000
SHAPE_SYNSET = 91_000_000
LETTER_SYNSET = 92_000_000
#: Test images get numbers from here on, so training and test names never collide.
TEST_NUMBER_OFFSET = 100_000
GREY = (128, 128, 128)
JPEG_QUALITY = 95


@dataclass
class StimulusSet:
    """Images of one session type, as decoded from their JPEG files.

    Attributes
    ----------
    folder : str
        Sub-folder under ``images/`` ("training", "test", "artificial", "letters").
    images : ndarray, shape (M, S, S, 3), uint8, RGB
    ids : ndarray, shape (M,), float64 stimulus ids
    descriptions : list of str
        What each image is ("crop of astronaut.png", "dead leaves", "red square", ...).
    jpeg : list of bytes
        The encoded files, written as ``<id_to_name(id)>.JPEG``.
    """

    folder: str
    images: np.ndarray
    ids: np.ndarray
    descriptions: list[str]
    jpeg: list[bytes] = field(repr=False)

    @property
    def names(self) -> list[str]:
        """Image names (no extension), ``labels.id_to_name`` of each id."""
        return [id_to_name(i) for i in self.ids]


def _encode_decode(image: np.ndarray) -> tuple[bytes, np.ndarray]:
    """JPEG-encode an RGB uint8 image; return the bytes and the decoded pixels."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        return data, np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def _make_set(folder: str, images: list[np.ndarray], ids: list[float], what: list[str]):
    encoded = [_encode_decode(image) for image in images]
    return StimulusSet(
        folder=folder,
        images=np.stack([pixels for _, pixels in encoded]),
        ids=np.asarray(ids, dtype=np.float64),
        descriptions=what,
        jpeg=[data for data, _ in encoded],
    )


def natural_images(
    split: str,
    n_images: int,
    size_px: int,
    rng: np.random.Generator,
    dead_leaves_fraction: float = 0.35,
) -> StimulusSet:
    """Natural-like images of one split ("training" or "test").

    Parameters
    ----------
    split : {"training", "test"}
        Chooses the source photographs (disjoint between splits) and the id numbers.
    n_images : int
    size_px : int
    rng : numpy Generator
        Use a different stream per split, so test dead-leaves images are novel.
    dead_leaves_fraction : float
        Share of dead-leaves images; the rest are photograph crops.

    Returns
    -------
    StimulusSet
        Folder "training" or "test"; images in a random order.
    """
    photos = load_photos(split)
    palette = colour_palette(load_photos("training"), np.random.default_rng(12345))
    n_leaves = round(n_images * dead_leaves_fraction)
    sources = sorted(photos)
    offset = TEST_NUMBER_OFFSET if split == "test" else 0
    images, ids, what = [], [], []
    for number in range(1, n_images + 1):
        if number <= n_leaves:
            images.append(dead_leaves(rng, size_px, palette))
            synset, description = DEAD_LEAVES_SYNSET, "dead leaves"
        else:
            source = sources[(number - n_leaves - 1) % len(sources)]
            images.append(photo_crop(photos[source], rng, size_px))
            synset, description = PHOTO_SYNSET + source, f"crop of {PHOTOS[source][1]}"
        ids.append(float(f"{synset}.{number + offset:06d}"))
        what.append(description)
    order = rng.permutation(n_images)  # mix the kinds, as a photo set would be
    return _make_set(
        split, [images[i] for i in order], [ids[i] for i in order], [what[i] for i in order]
    )


def _supersampled(size_px: int, draw_fn) -> np.ndarray:
    """Draw on a 4x grey canvas with ``draw_fn(draw, canvas_px)``; downsample (anti-aliased)."""
    canvas_px = 4 * size_px
    canvas = Image.new("RGB", (canvas_px, canvas_px), GREY)
    draw_fn(ImageDraw.Draw(canvas), canvas_px)
    small = canvas.resize((size_px, size_px), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


def _draw_shape(shape: str, colour: tuple[int, int, int]):
    def draw_fn(draw: ImageDraw.ImageDraw, n: int) -> None:
        c = n / 2
        half = {"square": 0.22, "small frame": 0.2, "large frame": 0.36}.get(shape, 0.32) * n
        bar = 0.07 * n  # half-width of bars and frame lines
        if shape == "square":
            draw.rectangle((c - half, c - half, c + half, c + half), fill=colour)
        elif shape.endswith("frame"):
            draw.rectangle((c - half, c - half, c + half, c + half), fill=colour)
            inner = half - 2 * bar * (0.6 if shape == "small frame" else 1.0)
            draw.rectangle((c - inner, c - inner, c + inner, c + inner), fill=GREY)
        else:
            arms = [(-half, -bar, half, bar), (-bar, -half, bar, half)]
            angle = 0.0 if shape == "plus" else np.pi / 4
            for x0, y0, x1, y1 in arms:
                corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
                rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                points = corners @ rot.T + c
                draw.polygon([(float(x), float(y)) for x, y in points], fill=colour)

    return draw_fn


def artificial_shapes(size_px: int) -> StimulusSet:
    """The 40 artificial images: 5 shapes x 8 colours, centred on uniform grey.

    Parameters
    ----------
    size_px : int

    Returns
    -------
    StimulusSet
        Folder "artificial"; id ``9100000s.00000c`` for shape s and colour c.
    """
    images, ids, what = [], [], []
    for s, shape in enumerate(SHAPES, start=1):
        for c, (colour_name, rgb) in enumerate(COLOURS, start=1):
            images.append(_supersampled(size_px, _draw_shape(shape, rgb)))
            ids.append(float(f"{SHAPE_SYNSET + s}.{c:06d}"))
            what.append(f"{colour_name} {shape}")
    return _make_set("artificial", images, ids, what)


def find_font(size: int) -> ImageFont.FreeTypeFont:
    """A bold TrueType font: DejaVu Sans Bold as shipped by matplotlib.

    Raises
    ------
    DataError
        If no TrueType font can be found.
    """
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf"):
        if (fonts / name).is_file():
            return ImageFont.truetype(str(fonts / name), size=size)
    raise DataError(
        f"No TrueType font found in {fonts} (expected DejaVuSans-Bold.ttf, shipped by "
        "matplotlib); reinstall matplotlib."
    )


def letters(size_px: int) -> StimulusSet:
    """The 10 letter images (A C E I N O R S T U), black, centred on uniform grey.

    Parameters
    ----------
    size_px : int

    Returns
    -------
    StimulusSet
        Folder "letters"; id ``92000000.0000xx`` with xx the character code.
    """
    images, ids, what = [], [], []
    for letter in LETTERS:

        def draw_fn(draw: ImageDraw.ImageDraw, n: int, letter: str = letter) -> None:
            # Large, heavy glyphs (ink about 0.7 of the side high): thin,
            # small letters leave most voxels on the grey background.
            font, stroke = find_font(round(LETTER_SIZE * n)), round(LETTER_STROKE * n)
            left, top, right, bottom = draw.textbbox((0, 0), letter, font=font, stroke_width=stroke)
            origin = ((n - (right + left)) / 2, (n - (bottom + top)) / 2)  # centre the ink
            draw.text(origin, letter, font=font, fill=BLACK, stroke_width=stroke, stroke_fill=BLACK)

        images.append(_supersampled(size_px, draw_fn))
        ids.append(float(f"{LETTER_SYNSET}.{ord(letter):06d}"))
        what.append(f"letter {letter}")
    return _make_set("letters", images, ids, what)
