"""The data home: where downloaded data, released models and weights live.

Every command that takes ``--subject`` without explicit paths, or
``--comparator caffenet`` without a weights file, looks here. The home is, in
order: the ``dest`` argument (``--dest``), the environment variable
``E2E_RECON_HOME``, or the user cache directory (``~/.cache/e2e-recon`` on
Linux, as given by platformdirs).

Layout::

    HOME/
      fmri/      sub-01_perceptionNaturalImageTraining_original_VC.h5, ...Test...,
                 ...ArtificialImage..., ...LetterImage...   (e2e-recon download fmri)
      models/    sub-01/generator.caffemodel, generator_test.prototxt,
                 discriminator.caffemodel, discriminator.prototxt  (e2e-recon download models)
      weights/   bvlc_reference_caffenet.caffemodel        (e2e-recon download caffenet)
                 alexnet-owt-7be5be79.pth                  (e2e-recon download alexnet)
      images/    training/ test/ artificial/ letters/      (stimulus images, placed by the user)
      cache/images/  resized uint8 image stacks (.npy), rebuilt when the images change

Image files are named by stimulus (``n01518878_5958.JPEG``); any common image
extension is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from e2e_recon.errors import DataError, DownloadError

ENV_HOME = "E2E_RECON_HOME"

FMRI_DIR = "fmri"
MODELS_DIR = "models"
WEIGHTS_DIR = "weights"
IMAGES_DIR = "images"

#: Session key -> the session name used in the lab's BData file names. The keys are
#: also the image sub-folders of HOME/images/.
SESSIONS: dict[str, str] = {
    "training": "perceptionNaturalImageTraining",
    "test": "perceptionNaturalImageTest",
    "artificial": "perceptionArtificialImage",
    "letters": "perceptionLetterImage",
}

#: Test-set name used by `reconstruct` / `evaluate` -> session key above.
TEST_SET_SESSIONS: dict[str, str] = {
    "natural": "test",
    "shapes": "artificial",
    "letters": "letters",
}

#: Files of one released model folder (HOME/models/sub-0N/), key -> file name.
MODEL_FILES: dict[str, str] = {
    "generator": "generator.caffemodel",
    "generator_prototxt": "generator_test.prototxt",
    "discriminator": "discriminator.caffemodel",
    "discriminator_prototxt": "discriminator.prototxt",
}

CAFFENET_FILE = "bvlc_reference_caffenet.caffemodel"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


IMAGE_CACHE_DIR = Path("cache") / "images"

_SUBJECT_PATTERN = re.compile(r"^(?:sub-?)?0*(\d{1,2})$", re.IGNORECASE)
#: ``sub-01_perceptionNaturalImageTraining_original_VC.h5`` -> ``sub-01`` (BIDS: sub-<label>).
_FILE_SUBJECT = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_|\.|$)")


def data_home(dest: str | os.PathLike[str] | None = None) -> Path:
    """Return the data home directory (not created).

    Parameters
    ----------
    dest : path, optional
        Explicit directory (``--dest``). Wins over everything else.

    Returns
    -------
    Path
        ``dest``, else ``$E2E_RECON_HOME``, else the user cache directory ``e2e-recon``.
    """
    if dest is not None and str(dest) != "":
        return Path(dest).expanduser()
    from_env = os.environ.get(ENV_HOME, "")
    if from_env:
        return Path(from_env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("e2e-recon", appauthor=False))


def image_cache_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Default folder of the preprocessed-image cache: ``HOME/cache/images`` (not created).

    The cache lives in the data home rather than beside the images, so that a user's
    own image folder (read-only, shared, or under version control) is never written to.
    ``data.cache_dir`` overrides it.
    """
    return data_home(home) / IMAGE_CACHE_DIR


def subject_in_file_name(path: str | Path | None) -> str | None:
    """The subject a file name starts with, as written (``sub-01`` of ``sub-01_...h5``), or None.

    The one reading of a subject from a file name: training names a shared generator's input
    layers with it, ``reconstruct`` picks a layer with it and the report states it. The label
    is kept as written (``sub-1`` stays ``sub-1``), so that the layers of a generator file
    keep their names; :func:`normalize_subject` gives the canonical ``sub-0N`` of a numbered one.
    """
    if not path:
        return None
    match = _FILE_SUBJECT.match(Path(str(path)).name)
    return match.group(1) if match else None


def normalize_subject(subject: str) -> str:
    """Return the canonical subject name ``sub-0N`` ("1", "01", "sub-1" all give "sub-01").

    Raises
    ------
    DataError
        When the text is not a subject name.
    """
    match = _SUBJECT_PATTERN.match(str(subject).strip())
    if match is None:
        raise DataError(
            f"subject {subject!r} is not a subject name: expected 'sub-01', 'sub-02', ... "
            "(or just the number)"
        )
    return f"sub-{int(match.group(1)):02d}"


def find_fmri_file(subject: str, session: str, home: Path) -> Path | None:
    """Return the BData file of one subject and session in ``home/fmri``, or None.

    The lab's name ``<subject>_<session>_original_VC.h5`` is preferred; any other
    ``<subject>_<session>*.h5`` (another release of the same session) is accepted.
    """
    folder = home / FMRI_DIR
    session_name = SESSIONS[session]
    preferred = folder / f"{subject}_{session_name}_original_VC.h5"
    if preferred.is_file():
        return preferred
    candidates = sorted(folder.glob(f"{subject}_{session_name}*.h5")) if folder.is_dir() else []
    return candidates[0] if candidates else None


def _missing_message(key: str, subject: str, home: Path) -> str:
    """One line saying which file is missing and which command gets it."""
    if key in SESSIONS:
        expected = home / FMRI_DIR / f"{subject}_{SESSIONS[key]}_original_VC.h5"
        return (
            f"no {key} fMRI file for {subject} in {home / FMRI_DIR} (expected {expected.name}); "
            f"run `e2e-recon download fmri --subject {subject} --dest {home}` or pass the path"
        )
    if key in MODEL_FILES:
        expected = home / MODELS_DIR / subject / MODEL_FILES[key]
        return (
            f"no released {key.replace('_', ' ')} for {subject}: {expected} does not exist; "
            f"run `e2e-recon download models --subject {subject} --dest {home}` or pass the path"
        )
    return f"{key} of {subject} is missing in {home}"


def resolve_subject_files(
    subject: str,
    home: str | os.PathLike[str] | None = None,
    require: Iterable[str] = (),
) -> dict[str, Path | None]:
    """Find a subject's fMRI files and released model in the data home.

    Parameters
    ----------
    subject : str
        "sub-01" (or "1", "01").
    home : path, optional
        Data home; default as in :func:`data_home`.
    require : iterable of str
        Keys that must exist; a missing one raises :class:`DataError` naming the
        ``e2e-recon download`` command that gets it.

    Returns
    -------
    dict
        ``training``, ``test``, ``artificial``, ``letters`` (BData paths),
        ``generator``, ``generator_prototxt``, ``discriminator``,
        ``discriminator_prototxt`` (released model files), ``model_dir`` and
        ``images`` (folders); a value is None when that file or folder is absent.
    """
    subject = normalize_subject(subject)
    root = data_home(home)
    files: dict[str, Path | None] = {key: find_fmri_file(subject, key, root) for key in SESSIONS}
    model_dir = root / MODELS_DIR / subject
    for key, name in MODEL_FILES.items():
        path = model_dir / name
        files[key] = path if path.is_file() else None
    files["model_dir"] = model_dir if model_dir.is_dir() else None
    images = root / IMAGES_DIR
    files["images"] = images if images.is_dir() else None
    for key in require:
        if key not in files:
            raise DataError(f"unknown subject file key {key!r}; known: {', '.join(files)}")
        if files[key] is None:
            raise DataError(_missing_message(key, subject, root))
    return files


def resolve_comparator_weights(kind: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Return the weights file of a comparator in ``HOME/weights``.

    Parameters
    ----------
    kind : {"caffenet", "alexnet"}
        CaffeNet (``bvlc_reference_caffenet.caffemodel``) or torchvision AlexNet
        (``alexnet-owt-*.pth``).
    home : path, optional
        Data home; default as in :func:`data_home`.

    Raises
    ------
    DataError
        When the file is absent; the message names the command that downloads it.
    """
    root = data_home(home)
    folder = root / WEIGHTS_DIR
    if kind == "caffenet":
        path = folder / CAFFENET_FILE
        if path.is_file():
            return path
    elif kind == "alexnet":
        path = folder / ALEXNET_FILE
        if path.is_file():
            return path
        others = sorted(folder.glob("alexnet-owt-*.pth")) if folder.is_dir() else []
        if others:
            return others[0]
    else:
        raise DataError(
            f"comparator kind {kind!r} has no weights file in the data home; "
            "expected 'caffenet' or 'alexnet'"
        )
    raise DataError(
        f"no {kind} weights: {path} does not exist; run `e2e-recon download {kind} --dest {root}` "
        "or pass the weights file explicitly"
    )


def remote_file_path(home: Path, folder: str, name: str) -> Path:
    """``home/folder/name`` for a file name that came from a server, checked first.

    A listing or URL is not trusted to name a file: a name with a path separator,
    ``..``, a NUL or a leading dot could write outside the data home or over its
    bookkeeping (``.figshare/``, ``.NAME.verified.json``).

    Parameters
    ----------
    home : Path
        The data home.
    folder : str
        Its subfolder (``fmri``, ``models``, ``weights``).
    name : str
        The remote file name.

    Returns
    -------
    Path

    Raises
    ------
    DownloadError
        Naming the remote name and what is wrong with it.
    """
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    problem = None
    if not name or name in (".", "..") or name.startswith("."):
        problem = "it is empty or starts with a dot"
    elif any(sep in name for sep in separators) or "\0" in name:
        problem = "it contains a path separator or a NUL character"
    elif ".." in name:
        problem = "it contains '..'"
    dest = home / folder / name
    root = os.path.normpath(os.path.abspath(home))
    if (
        problem is None
        and os.path.commonpath([root, os.path.normpath(os.path.abspath(dest))]) != root
    ):
        problem = f"it would be written outside the data home {home}"
    if problem is not None:
        raise DownloadError(
            f"refusing the remote file name {name!r}: {problem}. The server's listing is "
            "malformed; nothing was downloaded for it."
        )
    return dest
