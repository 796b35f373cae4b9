"""``e2e-recon download``: the public fMRI data, released models and comparator weights.

Targets (see :data:`TARGET_HELP`): ``fmri`` and ``models`` come from figshare, whose
public API lists an article's files (name, size, MD5, download URL) at run time,
so new uploads are found without a code change; the listing saved by the last
successful call (with its checksums) is the fallback when the API cannot be
reached, and without one nothing is fetched. ``caffenet``
and ``alexnet`` are single files with published checksums. Everything lands in the
data home (:mod:`e2e_recon.data.home`). The base URLs can be changed with
:class:`Sources` or the environment variables ``E2E_RECON_FIGSHARE_API``,
``E2E_RECON_FIGSHARE_FILES``, ``E2E_RECON_CAFFENET_URL`` and ``E2E_RECON_ALEXNET_URL``.
``eval-nets`` fetches the networks of the evaluation suites from their official
addresses (see :mod:`e2e_recon.evalnets.registry` for what each check covers).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.filesize import decimal

from e2e_recon.data.fetching.fetch import FetchOptions, RemoteFile, fetch_many, is_verified
from e2e_recon.data.fetching.figshare import (
    ARTICLE_PAGES,
    FMRI_ARTICLE,
    MODELS_ARTICLE,
    ArticleFile,
    Sources,
    list_article_files,
    saved_article_files,
)
from e2e_recon.data.fetching.unzip import is_unpacked, unpack_model_archive
from e2e_recon.data.home import (
    FMRI_DIR,
    IMAGES_DIR,
    MODELS_DIR,
    SESSIONS,
    WEIGHTS_DIR,
    data_home,
    normalize_subject,
    remote_file_path,
)
from e2e_recon.errors import DownloadError, ModelFormatError

SUBJECTS = ("sub-01", "sub-02", "sub-03")
TARGETS = ("fmri", "models", "caffenet", "alexnet", "eval-nets", "all")

CAFFENET_SHA1 = "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46"
IMAGE_REQUEST_URL = "https://forms.gle/ujvA34948Xg49jdn9"
IMAGE_REQUEST_PAGE = "https://github.com/KamitaniLab/DeepImageReconstruction"


@dataclass
class Plan:
    """Files to fetch, model archives to unpack, and notes for the user."""

    remotes: list[RemoteFile] = field(default_factory=list)
    archives: dict[str, RemoteFile] = field(default_factory=dict)  # subject -> zip
    present: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (evaluation network, file) without a published checksum: checked by loading.
    checks: list[tuple[str, Path]] = field(default_factory=list)


#: What each target fetches, its approximate size and where it goes (for --help).
TARGET_HELP: dict[str, str] = {
    "fmri": "preprocessed BData files (figshare 7033577): natural-image training and test, "
    "artificial shapes and letters where the article holds them; roughly 1 GB per subject "
    "(exact sizes are read from figshare and shown before fetching) -> HOME/fmri/",
    "models": "released trained networks (figshare 7916144, trainedmodel_sub-0N.zip), "
    "unpacked to generator.caffemodel, generator_test.prototxt, discriminator.caffemodel, "
    "discriminator.prototxt; several hundred MB per subject -> HOME/models/sub-0N/",
    "caffenet": "bvlc_reference_caffenet.caffemodel (BVLC model zoo, SHA-1 checked), "
    "about 233 MB -> HOME/weights/",
    "alexnet": "torchvision AlexNet state dict alexnet-owt-7be5be79.pth (SHA-256 prefix "
    "checked), about 233 MB -> HOME/weights/",
    "eval-nets": "the networks of `evaluate --suite nsd|kamitani` from their official sources: "
    "torchvision AlexNet, VGG19, Inception-v3, EfficientNet-B1 (SHA-256 prefix checked), "
    "SwAV ResNet-50 (no published checksum: checked to be a ResNet-50 state dict) and OpenAI "
    "CLIP ViT-L/14 (full SHA-256 checked); about 1.9 GB -> HOME/weights/",
    "all": "fmri, models, caffenet and alexnet (not eval-nets)",
}


def _remote(item: ArticleFile, home: Path, folder: str, article_id: int) -> RemoteFile:
    """The file ``item`` of a listing, to be fetched into ``home/folder``, name checked."""
    return RemoteFile(
        url=item.url,
        dest=remote_file_path(home, folder, item.name),
        size=item.size,
        algorithm="md5" if item.md5 else None,
        digest=item.md5,
        manual_hint=f"{item.name} from {ARTICLE_PAGES[article_id]}",
    )


# -- targets -----------------------------------------------------------------------------


def _fmri_files(listing: list[ArticleFile], subject: str) -> list[ArticleFile]:
    sessions = "|".join(SESSIONS.values())
    pattern = re.compile(rf"^{re.escape(subject)}_({sessions})(_.*)?\.h5$")
    return [item for item in listing if pattern.match(item.name)]


def _plan_fmri_from(listing: list[ArticleFile], subjects: Sequence[str], home: Path) -> Plan:
    plan = Plan()
    for subject in subjects:
        items = _fmri_files(listing, subject)
        if not items:
            raise DownloadError(
                f"figshare article {FMRI_ARTICLE} lists no fMRI files for {subject}; "
                f"subjects with data: {', '.join(SUBJECTS)}"
            )
        for item in items:
            plan.remotes.append(_remote(item, home, FMRI_DIR, FMRI_ARTICLE))
    return plan


def plan_fmri(
    subjects: Sequence[str], home: Path, sources: Sources, force: bool, log: Callable[[str], None]
) -> Plan:
    """The BData files of ``subjects`` (a complete cache makes no request)."""
    if not force:
        cached = saved_article_files(FMRI_ARTICLE, home) or []
        try:
            plan = _plan_fmri_from(cached, subjects, home)
        except DownloadError:
            plan = Plan()
        if plan.remotes and all(is_verified(remote) for remote in plan.remotes):
            return plan
    listing = list_article_files(FMRI_ARTICLE, sources, home, log)
    return _plan_fmri_from(listing, subjects, home)


def _plan_models_from(listing: list[ArticleFile], subjects: Sequence[str], home: Path) -> Plan:
    plan = Plan()
    by_name = {item.name: item for item in listing}
    for subject in subjects:
        item = by_name.get(f"trainedmodel_{subject}.zip")
        if item is None:
            raise DownloadError(
                f"figshare article {MODELS_ARTICLE} has no trainedmodel_{subject}.zip; "
                f"released models exist for {', '.join(SUBJECTS)}"
            )
        plan.archives[subject] = _remote(item, home, MODELS_DIR, MODELS_ARTICLE)
    return plan


def _drop_unpacked(plan: Plan, home: Path) -> Plan:
    """Move subjects whose model folder is already unpacked from ``archives`` to ``present``."""
    for subject, archive in list(plan.archives.items()):
        folder = home / MODELS_DIR / subject
        if is_unpacked(folder, archive.dest.name, archive.digest):
            plan.present.append(folder)
            del plan.archives[subject]
    plan.remotes = list(plan.archives.values())
    return plan


def plan_models(
    subjects: Sequence[str], home: Path, sources: Sources, force: bool, log: Callable[[str], None]
) -> Plan:
    """The released model archives of ``subjects`` not unpacked yet (none: no request)."""
    if not force:
        saved: Plan | None
        try:
            saved = _plan_models_from(
                saved_article_files(MODELS_ARTICLE, home) or [], subjects, home
            )
        except DownloadError:
            saved = None  # some subject is not in the saved listing
        if saved is not None and not _drop_unpacked(saved, home).archives:
            return saved
    plan = _plan_models_from(list_article_files(MODELS_ARTICLE, sources, home, log), subjects, home)
    if force:
        plan.remotes = list(plan.archives.values())
        return plan
    return _drop_unpacked(plan, home)


def plan_weights(kind: str, home: Path, sources: Sources) -> Plan:
    """The CaffeNet or AlexNet weights file."""
    algorithm: str | None
    digest: str | None
    if kind == "caffenet":
        url, algorithm, digest = sources.caffenet_url, "sha1", CAFFENET_SHA1
    else:
        url = sources.alexnet_url
        match = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", url)
        algorithm = "sha256-prefix" if match else None
        digest = match.group(1) if match else None
    name = urllib.parse.urlparse(url).path.rpartition("/")[2]
    remote = RemoteFile(
        url, remote_file_path(home, WEIGHTS_DIR, name), None, algorithm, digest, url
    )
    return Plan(remotes=[remote])


def plan_eval_nets(home: Path, sources: Sources) -> Plan:
    """The weights of every evaluation network (:data:`e2e_recon.evalnets.registry.EVAL_NETS`)."""
    from e2e_recon.evalnets.registry import EVAL_NETS, eval_net_remote

    urls = dict(sources.eval_net_urls)
    plan = Plan()
    for key, spec in EVAL_NETS.items():
        remote = eval_net_remote(spec, home, urls.get(key))
        plan.remotes.append(remote)
        if remote.digest is None:
            plan.checks.append((key, remote.dest))
    return plan


def _check_unpublished(plan: Plan, log: Callable[[str], None]) -> None:
    """Files without a published checksum: load them into their architecture, show the SHA-256."""
    from e2e_recon.data.fetching.fetch import file_digest
    from e2e_recon.evalnets.registry import EVAL_NETS, load_eval_net

    for key, path in plan.checks:
        try:
            load_eval_net(key, path)
        except ModelFormatError as error:
            path.unlink(missing_ok=True)
            path.with_name(f".{path.name}.verified.json").unlink(missing_ok=True)
            raise DownloadError(f"{error}; the file was deleted") from error
        log(
            f"{path.name}: {EVAL_NETS[key].title} publishes no checksum; it loads as the "
            f"expected network. SHA-256 {file_digest(path, 'sha256')}"
        )


# -- the command ---------------------------------------------------------------------------


def images_notice(home: Path) -> str:
    """Where to request the stimulus images and where to put them."""
    return (
        "The stimulus images are not public: request them from the Kamitani lab "
        f"({IMAGE_REQUEST_URL}; see {IMAGE_REQUEST_PAGE}), then put them in "
        f"{home / IMAGES_DIR}/training/, test/, artificial/ and letters/ under their own "
        "names (n01518878_5958.JPEG, ...) and run `e2e-recon check-data --subject sub-01`."
    )


def _subjects(subjects: Sequence[str]) -> list[str]:
    names = [normalize_subject(subject) for subject in subjects] or list(SUBJECTS)
    return list(dict.fromkeys(names))


def plan_download(
    what: str,
    subjects: Sequence[str],
    home: Path,
    sources: Sources,
    force: bool,
    log: Callable[[str], None],
) -> Plan:
    """Everything one ``download WHAT`` needs, without fetching file contents."""
    if what not in TARGETS:
        raise DownloadError(
            f"unknown download target {what!r}; expected one of {', '.join(TARGETS)}"
        )
    names = _subjects(subjects)
    plan = Plan()
    parts = ["fmri", "models", "caffenet", "alexnet"] if what == "all" else [what]
    for part in parts:
        if part == "fmri":
            sub = plan_fmri(names, home, sources, force, log)
            sub.notes.append(images_notice(home))
        elif part == "models":
            sub = plan_models(names, home, sources, force, log)
        elif part == "eval-nets":
            sub = plan_eval_nets(home, sources)
        else:
            sub = plan_weights(part, home, sources)
        plan.remotes += sub.remotes
        plan.archives.update(sub.archives)
        plan.present += sub.present
        plan.notes += sub.notes
        plan.checks += sub.checks
    return plan


def _fetch_message(plan: Plan, already: set[Path], home: Path) -> str:
    """One line: how many files, how many bytes, where."""
    todo = [remote for remote in plan.remotes if remote.dest not in already]
    if not todo:
        return f"everything requested is already in {home} (verified)"
    known = sum(remote.size or 0 for remote in todo)
    unknown = sum(remote.size is None for remote in todo)
    size = decimal(known) + (f" + {unknown} file(s) of unknown size" if unknown else "")
    return f"fetching {len(todo)} file(s), {size}, into {home}"


def _default_log(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, markup=False, highlight=False)


def download(
    what: str,
    subjects: Sequence[str] = (),
    dest: str | os.PathLike[str] | None = None,
    force: bool = False,
    *,
    sources: Sources | None = None,
    options: FetchOptions | None = None,
    show_progress: bool = True,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fetch a target into the data home, verified; nothing already verified is fetched again.

    Parameters
    ----------
    what : {"fmri", "models", "caffenet", "alexnet", "eval-nets", "all"}
        See :data:`TARGET_HELP`.
    subjects : sequence of str
        Subjects for ``fmri`` / ``models`` (default: all three).
    dest : path, optional
        Data home (``--dest``); default ``$E2E_RECON_HOME`` or the user cache directory.
    force : bool
        Fetch again even when a verified copy exists.
    sources : Sources, optional
        Base URLs; default :meth:`Sources.from_env`.
    options : FetchOptions, optional
        Retries and timeouts (``force`` is taken from the argument above).
    show_progress : bool
        Show a progress bar per file.
    dry_run : bool
        List what would be fetched (the figshare listing is still read) and stop.
    log : callable, optional
        Where messages go (default: standard error).

    Returns
    -------
    dict
        ``home``, ``files`` (list of dicts: ``path``, ``size``, ``status`` =
        "downloaded", "present", "planned" or "unpacked" with ``unpacked_to``),
        ``model_dirs`` (released model folders, new or present) and ``notes``.

    Raises
    ------
    DownloadError
        One line: URL, what failed, how to put the file in place by hand.
    """
    log = log or _default_log
    home = data_home(dest)
    sources = sources or Sources.from_env()
    base = options or FetchOptions()
    options = FetchOptions(force, base.attempts, base.retry_wait_s, base.timeout_s)
    plan = plan_download(what, subjects, home, sources, force, log)
    already = {r.dest for r in plan.remotes if not force and is_verified(r)}
    files = [
        {
            "path": str(r.dest),
            "size": r.size,
            "status": "present" if r.dest in already else "planned",
        }
        for r in plan.remotes
    ]
    summary: dict[str, Any] = {"home": str(home), "files": files, "notes": plan.notes}
    summary["model_dirs"] = [str(p) for p in plan.present]
    if dry_run:
        return summary
    log(_fetch_message(plan, already, home))
    fetch_many(plan.remotes, options, show_progress=show_progress)
    _check_unpublished(plan, log)
    for entry in files:
        entry["status"] = "present" if Path(str(entry["path"])) in already else "downloaded"
    for subject, archive in plan.archives.items():
        folder = unpack_model_archive(archive.dest, home / MODELS_DIR / subject, archive.digest)
        archive.dest.unlink(missing_ok=True)  # unpacked and marked: the archive is not needed
        archive.sidecar.unlink(missing_ok=True)
        summary["model_dirs"].append(str(folder))
        for entry in files:
            if entry["path"] == str(archive.dest):
                entry["status"], entry["unpacked_to"] = "unpacked", str(folder)
    for note in plan.notes:
        log(note)
    return summary


# -- command-line glue ---------------------------------------------------------------------

DOWNLOAD_HELP = (
    "Download the public data and released models into the data home (verified, resumable).\n\n"
    "WHAT is one of:\n\n"
    + "\n\n".join(f"{name}: {text}" for name, text in TARGET_HELP.items())
    + "\n\nHOME is --dest, else $E2E_RECON_HOME, else the user cache folder (~/.cache/e2e-recon "
    "on Linux). Partial files resume; verified files are never fetched twice (--force redoes). "
    "The stimulus images are not public: `download fmri` says where to request them.\n\n"
    "Example: [bold]e2e-recon download fmri --subject sub-01[/]"
)


def download_cli(
    what: str,
    subjects: Sequence[str] | None = None,
    dest: str | os.PathLike[str] | None = None,
    force: bool = False,
    console: Any = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """``e2e-recon download``: fetch, then print one line per file (status, size, path).

    With ``dry_run`` (a ``--list`` option) only the plan is printed: what would be
    fetched, its size from figshare, and where it would go.
    """
    from rich.console import Console

    console = console or Console()
    errors = Console(stderr=True)

    def log(message: str) -> None:
        errors.print(message, markup=False, highlight=False, soft_wrap=True)

    summary = download(
        what,
        subjects or (),
        dest,
        force,
        show_progress=errors.is_terminal,
        dry_run=dry_run,
        log=log,
    )
    for entry in summary["files"]:
        size = decimal(entry["size"]) if entry["size"] else "?"
        path = entry.get("unpacked_to", entry["path"])
        console.print(f"{entry['status']:>10}  {size:>10}  {path}", markup=False, soft_wrap=True)
    return summary


def check_data_cli(
    subject: str,
    home: str | os.PathLike[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """``e2e-recon check-data``: print the report of
    :func:`e2e_recon.data.fetching.check.check_data`."""
    from rich.console import Console

    from e2e_recon.data.fetching.check import check_data

    console = console or Console()
    report = check_data(subject, home, images_dir)
    for line in report["lines"]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return report
