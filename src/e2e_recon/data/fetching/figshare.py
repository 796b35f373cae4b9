"""Public figshare articles: file listings from the API, with the saved listing as fallback.

figshare's public API lists an article's files (name, size, MD5, download URL) at
``<api>/articles/<id>/files``, so files added after this code was written are found.
A listing read from the API is cached in ``HOME/.figshare/<id>.json`` so that a
complete data home can be checked without any request, and so that downloads can
go on, still verified, when the API is down. Without either there are no checksums
to verify against, and nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_recon.errors import DownloadError

FMRI_ARTICLE = 7033577
MODELS_ARTICLE = 7916144

ARTICLE_PAGES = {
    FMRI_ARTICLE: "https://figshare.com/articles/dataset/Deep_Image_Reconstruction/7033577",
    MODELS_ARTICLE: "https://figshare.com/articles/dataset/"
    "End-to-end_deep_image_reconstruction_from_human_brain_activity/7916144",
}


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "") or default


@dataclass(frozen=True)
class Sources:
    """Base URLs of the remote files (tests point them at 127.0.0.1)."""

    figshare_api: str = "https://api.figshare.com/v2"
    figshare_files: str = "https://ndownloader.figshare.com/files"
    caffenet_url: str = "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel"
    alexnet_url: str = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    #: Evaluation network key -> URL, replacing the official address (tests).
    eval_net_urls: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls) -> Sources:
        """Defaults, overridden by ``E2E_RECON_FIGSHARE_API`` and friends."""
        base = cls()
        return cls(
            figshare_api=_env("E2E_RECON_FIGSHARE_API", base.figshare_api).rstrip("/"),
            figshare_files=_env("E2E_RECON_FIGSHARE_FILES", base.figshare_files).rstrip("/"),
            caffenet_url=_env("E2E_RECON_CAFFENET_URL", base.caffenet_url),
            alexnet_url=_env("E2E_RECON_ALEXNET_URL", base.alexnet_url),
        )


@dataclass(frozen=True)
class ArticleFile:
    """One file of a figshare article as its API lists it."""

    name: str
    url: str
    size: int | None = None
    md5: str | None = None


def _read_json(url: str, timeout_s: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read().decode("utf-8"))


def fetch_article_listing(article_id: int, sources: Sources, timeout_s: float = 30.0) -> list[dict]:
    """The raw file records of a public figshare article (all pages)."""
    records: list[dict] = []
    page_size = 100
    for page in range(1, 51):
        query = urllib.parse.urlencode({"page": page, "page_size": page_size})
        url = f"{sources.figshare_api}/articles/{article_id}/files?{query}"
        batch = _read_json(url, timeout_s)
        if not isinstance(batch, list):
            raise ValueError(f"{url} did not return a list of files")
        records.extend(batch)
        if len(batch) < page_size:
            break
    return records


def _to_article_files(records: list[dict]) -> list[ArticleFile]:
    files = []
    for record in records:
        if record.get("is_link_only") or not record.get("name") or not record.get("download_url"):
            continue
        md5 = record.get("computed_md5") or record.get("supplied_md5") or None
        size = record.get("size")
        files.append(
            ArticleFile(
                name=str(record["name"]),
                url=str(record["download_url"]),
                size=int(size) if isinstance(size, int) and size > 0 else None,
                md5=str(md5).lower() if md5 else None,
            )
        )
    return files


def _cache_path(article_id: int, home: Path) -> Path:
    return home / ".figshare" / f"{article_id}.json"


def saved_article_files(article_id: int, home: Path) -> list[ArticleFile] | None:
    """The listing saved by the last successful API call, or None (no request is made)."""
    try:
        return _to_article_files(json.loads(_cache_path(article_id, home).read_text()))
    except (OSError, ValueError):
        return None


def list_article_files(
    article_id: int, sources: Sources, home: Path, log: Callable[[str], None]
) -> list[ArticleFile]:
    """Files of a figshare article from the API, else from the listing saved last time.

    A listing read from the API is saved in ``HOME/.figshare/<id>.json``.

    Raises
    ------
    DownloadError
        When the API fails and no listing was saved: without the listed checksums
        the files could not be verified, so none is fetched.
    """
    cache = _cache_path(article_id, home)
    try:
        records = fetch_article_listing(article_id, sources)
    except (urllib.error.URLError, OSError, ValueError) as error:
        saved = saved_article_files(article_id, home)
        if saved is None:
            raise DownloadError(
                f"could not list figshare article {article_id} ({error}) and no listing was "
                f"saved in {cache}, so the files' checksums are unknown; nothing was downloaded. "
                f"Run the command again later, or download the files by hand from "
                f"{ARTICLE_PAGES.get(article_id, sources.figshare_api)}"
            ) from error
        log(f"warning: could not list figshare article {article_id} ({error}); using the "
            f"listing saved in {cache}")  # fmt: skip
        return saved
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps(records))
    os.replace(tmp, cache)
    return _to_article_files(records)
