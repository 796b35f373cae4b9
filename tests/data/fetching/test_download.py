"""Downloads against a fake figshare on 127.0.0.1: never the internet."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_figshare import FakeFigshare

from e2e_recon.data.fetching import download as dl
from e2e_recon.data.fetching.fetch import FetchOptions
from e2e_recon.data.fetching.figshare import FMRI_ARTICLE, MODELS_ARTICLE, Sources
from e2e_recon.data.home import resolve_subject_files
from e2e_recon.errors import DownloadError

FAST = FetchOptions(retry_wait_s=0.0, timeout_s=5.0)
SESSION_NAMES = (
    "perceptionNaturalImageTraining",
    "perceptionNaturalImageTest",
    "perceptionArtificialImage",
    "perceptionLetterImage",
)


@pytest.fixture
def server() -> Iterator[FakeFigshare]:
    fake = FakeFigshare().start()
    yield fake
    fake.stop()


def _sources(fake: FakeFigshare, alexnet_name: str = "alexnet-owt-00000000.pth") -> Sources:
    return Sources(
        figshare_api=fake.url + "/v2",
        figshare_files=fake.url + "/files",
        caffenet_url=fake.url + "/files/bvlc_reference_caffenet.caffemodel",
        alexnet_url=f"{fake.url}/files/{alexnet_name}",
    )


def _content(name: str, size: int = 50_000) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _publish_fmri(fake: FakeFigshare, subjects: tuple[str, ...] = ("sub-01", "sub-02")) -> dict:
    """List four sessions per subject plus files the downloader must ignore."""
    published = {}
    for subject in subjects:
        for session in SESSION_NAMES:
            name = f"{subject}_{session}_original_VC.h5"
            published[name] = _content(name)
            fake.add_file(FMRI_ARTICLE, name, published[name])
    fake.add_file(FMRI_ARTICLE, "sub-01_imageryNaturalImage_original_VC.h5", b"imagery")
    fake.add_file(FMRI_ARTICLE, "decoded_features.tar.gz", b"features")
    return published


def _run(fake: FakeFigshare, what: str, home: Path, **kwargs) -> dict:
    messages: list[str] = []
    kwargs.setdefault("options", FAST)
    kwargs.setdefault("sources", _sources(fake))
    summary = dl.download(what, dest=home, show_progress=False, log=messages.append, **kwargs)
    summary["log"] = messages
    return summary


def test_fresh_download_fetches_only_the_subjects_sessions(server, tmp_path):
    published = _publish_fmri(server)
    summary = _run(server, "fmri", tmp_path, subjects=["sub-01"])
    got = sorted(p.name for p in (tmp_path / "fmri").glob("*.h5"))
    assert got == sorted(name for name in published if name.startswith("sub-01"))
    for name in got:
        assert (tmp_path / "fmri" / name).read_bytes() == published[name]
    assert not list((tmp_path / "fmri").glob("*.part"))
    assert {entry["status"] for entry in summary["files"]} == {"downloaded"}
    assert sum(path.startswith("/v2/") for path, _ in server.requests) == 1  # one listing call
    assert any("request them" in line and "images" in line for line in summary["log"])
    files = resolve_subject_files("sub-01", tmp_path)
    assert files["test"] == tmp_path / "fmri" / "sub-01_perceptionNaturalImageTest_original_VC.h5"


def test_listing_is_paged(server, tmp_path):
    for index in range(105):  # figshare pages by 100 here: the downloader must read page 2
        server.add_file(FMRI_ARTICLE, f"extra_{index:03d}.bin", b"x")
    name = "sub-01_perceptionNaturalImageTest_original_VC.h5"
    server.add_file(FMRI_ARTICLE, name, b"payload")
    _run(server, "fmri", tmp_path, subjects=["1"])
    assert (tmp_path / "fmri" / name).read_bytes() == b"payload"


def test_resume_after_connection_cut(server, tmp_path):
    published = _publish_fmri(server, ("sub-01",))
    name = "sub-01_perceptionNaturalImageTraining_original_VC.h5"
    half = len(published[name]) // 2
    server.drop_once[f"/files/{name}"] = half
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert (tmp_path / "fmri" / name).read_bytes() == published[name]
    assert server.file_requests(name) == [None, f"bytes={half}-"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    remote_bytes = _content("weights.pth", 30_000)
    prefix = hashlib.sha256(remote_bytes).hexdigest()[:8]
    name = f"alexnet-owt-{prefix}.pth"
    server.files[f"/files/{name}"] = remote_bytes
    part = tmp_path / "weights" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(remote_bytes[:12_345])
    _run(server, "alexnet", tmp_path, sources=_sources(server, name))
    assert (tmp_path / "weights" / name).read_bytes() == remote_bytes
    assert server.file_requests(name) == ["bytes=12345-"]


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    published = _publish_fmri(server, ("sub-01",))
    name = "sub-01_perceptionLetterImage_original_VC.h5"
    part = tmp_path / "fmri" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from elsewhere")  # would corrupt the file if appended to
    server.range_support = False
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert (tmp_path / "fmri" / name).read_bytes() == published[name]
    assert server.file_requests(name) == ["bytes=26-"]


def test_checksum_mismatch_deletes_the_partial_file(server, tmp_path):
    name = "sub-01_perceptionNaturalImageTest_original_VC.h5"
    server.add_file(
        FMRI_ARTICLE, name, b"A" * 1000, listed_md5=hashlib.md5(b"B" * 1000).hexdigest()
    )
    with pytest.raises(DownloadError) as caught:
        _run(server, "fmri", tmp_path, subjects=["sub-01"])
    message = str(caught.value)
    assert name in message
    assert hashlib.md5(b"B" * 1000).hexdigest() in message  # expected
    assert hashlib.md5(b"A" * 1000).hexdigest() in message  # got
    assert not (tmp_path / "fmri" / name).exists()
    assert not (tmp_path / "fmri" / f"{name}.part").exists()


def test_404_is_one_clear_line_without_retries(server, tmp_path):
    name = "sub-01_perceptionNaturalImageTest_original_VC.h5"
    url = server.add_file(FMRI_ARTICLE, name, b"data")
    del server.files[f"/files/{name}"]
    with pytest.raises(DownloadError) as caught:
        _run(server, "fmri", tmp_path, subjects=["sub-01"])
    message = str(caught.value)
    assert "\n" not in message
    assert url in message and "HTTP 404" in message and "by hand" in message
    assert len(server.file_requests(name)) == 1
    assert not (tmp_path / "fmri" / name).exists()


def test_unreachable_host_is_one_clear_line(tmp_path):
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/bvlc_reference_caffenet.caffemodel"
    with pytest.raises(DownloadError) as caught:
        dl.download("caffenet", dest=tmp_path, sources=Sources(caffenet_url=url), options=FAST,
                    show_progress=False, log=lambda _: None)  # fmt: skip
    message = str(caught.value)
    assert "\n" not in message and url in message
    assert str(tmp_path / "weights" / "bvlc_reference_caffenet.caffemodel") in message
    assert not (tmp_path / "weights" / "bvlc_reference_caffenet.caffemodel").exists()


def test_complete_cache_makes_no_request_and_force_fetches_again(server, tmp_path):
    published = _publish_fmri(server, ("sub-01",))
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    server.requests.clear()
    summary = _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert server.requests == []
    assert {entry["status"] for entry in summary["files"]} == {"present"}

    name = "sub-01_perceptionNaturalImageTest_original_VC.h5"
    for record in server.articles[FMRI_ARTICLE]:  # a new upload of one file
        if record["name"] == name:
            record["computed_md5"] = hashlib.md5(b"new version").hexdigest()
            record["size"] = len(b"new version")
    server.files[f"/files/{name}"] = b"new version"
    _run(server, "fmri", tmp_path, subjects=["sub-01"], force=True)
    assert (tmp_path / "fmri" / name).read_bytes() == b"new version"
    assert len(server.requests) == 1 + len(published)  # listing + every file


def test_api_unreachable_without_saved_listing_refuses(server, tmp_path):
    """No listing means no checksums: nothing is fetched, nothing is marked verified."""
    server.api_status = 503
    server.files["/files/14830643"] = b"training"
    with pytest.raises(DownloadError, match=r"no listing was saved .* nothing was downloaded"):
        _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert not (tmp_path / "fmri").exists() or not any((tmp_path / "fmri").iterdir())
    assert all(path.startswith("/v2/") for path, _ in server.requests)


def test_api_unreachable_exits_2_through_the_command_line(server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from e2e_recon.cli import app

    server.api_status = 503
    monkeypatch.setenv("E2E_RECON_FIGSHARE_API", server.url + "/v2")
    result = CliRunner().invoke(
        app, ["download", "fmri", "--subject", "1", "--dest", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "nothing was downloaded" in result.output


@pytest.mark.parametrize(
    "name",
    [
        "sub-01_perceptionNaturalImageTraining_/../../../escaped.h5",
        "sub-01_perceptionNaturalImageTest_..\\x.h5",
        "sub-01_perceptionNaturalImageTest_x..h5",
    ],
)
def test_listing_names_that_escape_are_refused(server, tmp_path, name):
    home = tmp_path / "home"
    server.add_file(FMRI_ARTICLE, name, b"payload")
    with pytest.raises(DownloadError, match="refusing the remote file name"):
        _run(server, "fmri", home, subjects=["sub-01"])
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [Path("home/.figshare") / f"{FMRI_ARTICLE}.json"]  # the listing only


@pytest.mark.parametrize("tail", ["..", "", "."])
def test_weights_url_without_a_usable_file_name_is_refused(server, tmp_path, tail):
    sources = Sources(caffenet_url=f"{server.url}/files/{tail}")
    with pytest.raises(DownloadError, match="refusing the remote file name"):
        _run(server, "caffenet", tmp_path, sources=sources)


def test_interrupted_transfer_message_names_no_internal_class(server, tmp_path):
    published = _publish_fmri(server, ("sub-01",))
    name = "sub-01_perceptionNaturalImageTraining_original_VC.h5"
    server.range_support = False
    server.drop_once[f"/files/{name}"] = 1000
    with pytest.raises(DownloadError) as caught:
        _run(
            server,
            "fmri",
            tmp_path,
            subjects=["sub-01"],
            options=FetchOptions(attempts=1, retry_wait_s=0),
        )
    assert "_Interrupted" not in str(caught.value)
    assert "transfer interrupted (connection closed after 1000 of" in str(caught.value)
    assert len(published) == 4


def test_alexnet_checksum_from_file_name(server, tmp_path):
    payload = b"state dict bytes"
    good = f"alexnet-owt-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    server.files[f"/files/{good}"] = payload
    _run(server, "alexnet", tmp_path, sources=_sources(server, good))
    assert (tmp_path / "weights" / good).read_bytes() == payload
    server.files["/files/alexnet-owt-deadbeef.pth"] = payload
    with pytest.raises(DownloadError, match="expected sha256-prefix deadbeef"):
        _run(server, "alexnet", tmp_path, sources=_sources(server, "alexnet-owt-deadbeef.pth"))


def test_caffenet_sha1(server, tmp_path, monkeypatch):
    payload = b"caffenet weights"
    server.files["/files/bvlc_reference_caffenet.caffemodel"] = payload
    monkeypatch.setattr(dl, "CAFFENET_SHA1", hashlib.sha1(payload).hexdigest())
    _run(server, "caffenet", tmp_path)
    assert (tmp_path / "weights" / "bvlc_reference_caffenet.caffemodel").read_bytes() == payload


def test_at_most_three_parallel_downloads(server, tmp_path):
    for index in range(6):
        name = f"sub-01_perceptionNaturalImageTest_part{index}.h5"
        server.add_file(FMRI_ARTICLE, name, _content(name, 1000))
    server.delay_s = 0.05
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert len(list((tmp_path / "fmri").glob("*.h5"))) == 6
    assert server.max_in_flight <= 3


def _model_zip(wrapper: str = "sub-01") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{wrapper}/", "")
        for name in ("generator.caffemodel", "generator_test.prototxt",
                     "discriminator.caffemodel", "discriminator.prototxt"):  # fmt: skip
            archive.writestr(f"{wrapper}/{name}", f"contents of {name}")
        archive.writestr(f"__MACOSX/{wrapper}/._generator.caffemodel", "resource fork")
    return buffer.getvalue()


def test_models_are_unpacked_into_a_folder_per_subject(server, tmp_path):
    server.add_file(MODELS_ARTICLE, "trainedmodel_sub-01.zip", _model_zip())
    server.add_file(MODELS_ARTICLE, "trainedmodel_sub-02.zip", _model_zip("sub-02"))
    summary = _run(server, "models", tmp_path, subjects=["sub-01"])
    folder = tmp_path / "models" / "sub-01"
    assert summary["model_dirs"] == [str(folder)]
    assert (folder / "generator.caffemodel").read_text() == "contents of generator.caffemodel"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "discriminator.caffemodel", "discriminator.prototxt",
        "generator.caffemodel", "generator_test.prototxt",
    ]  # fmt: skip
    assert not (tmp_path / "models" / "trainedmodel_sub-01.zip").exists()
    assert not (tmp_path / "models" / "sub-02").exists()
    files = resolve_subject_files("sub-01", tmp_path, require=("generator",))
    assert files["generator"] == folder / "generator.caffemodel"

    server.requests.clear()
    _run(server, "models", tmp_path, subjects=["sub-01"])
    assert server.requests == []


def test_unsafe_model_archive_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("generator.caffemodel", "g")
        archive.writestr("../../escaped.txt", "outside")
    server.add_file(MODELS_ARTICLE, "trainedmodel_sub-01.zip", buffer.getvalue())
    with pytest.raises(DownloadError, match="unsafe member"):
        _run(server, "models", tmp_path, subjects=["sub-01"])
    assert not (tmp_path / "models" / "sub-01").exists()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not list((tmp_path / "models").glob(".sub-01*"))


def test_dry_run_lists_sizes_and_destinations(server, tmp_path):
    published = _publish_fmri(server, ("sub-01",))
    summary = _run(server, "fmri", tmp_path, subjects=["sub-01"], dry_run=True)
    assert {Path(entry["path"]).name for entry in summary["files"]} == set(published)
    assert all(entry["status"] == "planned" and entry["size"] > 0 for entry in summary["files"])
    assert not list((tmp_path / "fmri").glob("*.h5"))


def test_unknown_target_and_subject(tmp_path):
    with pytest.raises(DownloadError, match="unknown download target"):
        dl.download("imagenet", dest=tmp_path, log=lambda _: None)
    with pytest.raises(Exception, match="not a subject name"):
        dl.download("fmri", subjects=["alice"], dest=tmp_path, log=lambda _: None)


def test_command_line_glue_prints_one_row_per_file(server, tmp_path, monkeypatch):
    from rich.console import Console

    published = _publish_fmri(server, ("sub-01",))
    monkeypatch.setenv("E2E_RECON_FIGSHARE_API", server.url + "/v2")
    out = io.StringIO()
    console = Console(file=out, width=300)
    dl.download_cli("fmri", ["sub-01"], tmp_path, console=console, dry_run=True)
    assert out.getvalue().count("planned") == len(published)
    dl.download_cli("fmri", ["sub-01"], tmp_path, console=console)
    assert out.getvalue().count("downloaded") == len(published)
    assert all(name in dl.DOWNLOAD_HELP for name in dl.TARGETS)
    assert "Example:" in dl.DOWNLOAD_HELP


def test_file_placed_by_hand_is_verified_not_fetched(server, tmp_path):
    payload = b"weights placed by hand"
    name = f"alexnet-owt-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    server.files[f"/files/{name}"] = payload
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / name).write_bytes(payload)
    _run(server, "alexnet", tmp_path, sources=_sources(server, name))
    assert server.requests == []
    (tmp_path / "weights" / name).write_bytes(b"damaged")  # fails verification: fetched again
    _run(server, "alexnet", tmp_path, sources=_sources(server, name))
    assert (tmp_path / "weights" / name).read_bytes() == payload
    assert len(server.file_requests(name)) == 1


def test_stale_partial_file_of_an_older_upload_restarts_cleanly(server, tmp_path):
    name = "sub-01_perceptionNaturalImageTest_original_VC.h5"
    server.add_file(FMRI_ARTICLE, name, b"new upload " * 100)
    part = tmp_path / "fmri" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"OLD UPLOAD " * 50)  # same length prefix, other bytes
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    assert (tmp_path / "fmri" / name).read_bytes() == b"new upload " * 100
    assert server.file_requests(name) == [f"bytes={len(b'OLD UPLOAD ' * 50)}-", None]


def test_saved_listing_is_used_when_the_api_is_down(server, tmp_path):
    published = _publish_fmri(server, ("sub-01", "sub-02"))
    _run(server, "fmri", tmp_path, subjects=["sub-01"])
    server.api_status = 503
    summary = _run(server, "fmri", tmp_path, subjects=["sub-02"])
    assert any("listing saved" in line for line in summary["log"])
    assert len(list((tmp_path / "fmri").glob("sub-02_*.h5"))) == 4
    assert all(entry["size"] for entry in summary["files"])  # sizes / MD5s from the saved listing
    assert len(published) == 8
