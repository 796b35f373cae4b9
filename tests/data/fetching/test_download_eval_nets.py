"""``download eval-nets`` against a loopback server, then the suites reading the data home."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_figshare import FakeFigshare
from PIL import Image
from rich.console import Console
from torch import nn

from e2e_recon.data.fetching import download as dl
from e2e_recon.data.fetching.fetch import FetchOptions
from e2e_recon.data.fetching.figshare import Sources
from e2e_recon.errors import DownloadError, ModelFormatError
from e2e_recon.evalnets.clip_vit import VisionTransformer, ViTShape
from e2e_recon.evalnets.convnets import ResNet50
from e2e_recon.evalnets.efficientnet import EfficientNetB1
from e2e_recon.evalnets.registry import find_weights, load_eval_net
from e2e_recon.evaluate.suite_common import NetSource

FAST = FetchOptions(retry_wait_s=0.0, timeout_s=5.0)
SMALL_VIT = ViTShape(width=64, layers=2, output_dim=32)


@pytest.fixture
def server() -> Iterator[FakeFigshare]:
    fake = FakeFigshare().start()
    yield fake
    fake.stop()


def _saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _clip_archive() -> bytes:
    """A TorchScript archive with ``visual.*`` weights, like OpenAI's release (smaller)."""

    class Clip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.visual = VisionTransformer(SMALL_VIT)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    traced = torch.jit.trace(Clip().eval(), torch.zeros(1, 3, 224, 224))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _swav_checkpoint() -> bytes:
    """SwAV's layout: ``module.``-prefixed backbone plus projection head and prototypes."""
    state = {f"module.{k}": v for k, v in ResNet50(num_classes=None).state_dict().items()}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 2048)
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    return _saved(state)


def _publish(fake: FakeFigshare, swav: bytes | None = None) -> tuple[Sources, dict[str, bytes]]:
    contents = {
        "alexnet": b"not a network" * 10,
        "vgg19": b"vgg" * 10,
        "inception_v3": b"inception" * 10,
        "efficientnet_b1": _saved(EfficientNetB1().state_dict()),
        "swav_resnet50": swav if swav is not None else _swav_checkpoint(),
        "clip_vit_l14": _clip_archive(),
    }
    stems = {
        "alexnet": "alexnet-owt",
        "vgg19": "vgg19",
        "inception_v3": "inception_v3_google",
        "efficientnet_b1": "efficientnet_b1",
    }
    urls = {}
    for key, content in contents.items():
        digest = hashlib.sha256(content).hexdigest()
        if key in stems:
            path = f"/files/{stems[key]}-{digest[:8]}.pth"
        elif key == "clip_vit_l14":
            path = f"/clip/models/{digest}/ViT-L-14.pt"
        else:
            path = "/deepcluster/swav_800ep_pretrain.pth.tar"
        fake.files[path] = content
        urls[key] = fake.url + path
    return Sources(eval_net_urls=tuple(urls.items())), contents


def _recon_folder(tmp_path: Path, n_images: int = 3) -> tuple[Path, Path]:
    """Stimuli and 32 px .png reconstructions (noisy copies) with their index.csv."""
    recon_dir, images_dir = tmp_path / "recon", tmp_path / "images"
    (recon_dir / "e2e").mkdir(parents=True)
    images_dir.mkdir()
    rng = np.random.default_rng(0)
    lines = ["method,set,stimulus_id,stimulus_name,n_trials,mat,tif,png"]
    for i in range(n_images):
        stimulus = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(stimulus).save(images_dir / f"s{i}.png")
        noisy = np.clip(stimulus + rng.normal(scale=30, size=stimulus.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(recon_dir / "e2e" / f"s{i}.png")
        lines.append(f"e2e,natural,{i}.0,s{i},1,,,e2e/s{i}.png")
    (recon_dir / "index.csv").write_text("\n".join(lines) + "\n")
    return recon_dir, images_dir


@pytest.mark.slow
def test_download_verifies_caches_and_the_suite_reads_the_home(
    server: FakeFigshare, tmp_path: Path
) -> None:
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.evaluate.suites import SuiteOptions

    sources, _ = _publish(server)
    home, logs = tmp_path / "home", []
    summary = dl.download(
        "eval-nets", dest=home, sources=sources, options=FAST, show_progress=False,
        log=logs.append,
    )  # fmt: skip
    assert [f["status"] for f in summary["files"]] == ["downloaded"] * 6
    assert any("publishes no checksum" in line and "SHA-256" in line for line in logs)
    assert find_weights("clip_vit_l14", home) == home / "weights" / "ViT-L-14.pt"
    requests = len(server.requests)
    again = dl.download("eval-nets", dest=home, sources=sources, options=FAST, show_progress=False)
    assert [f["status"] for f in again["files"]] == ["present"] * 6
    assert len(server.requests) == requests  # nothing fetched twice

    clip = load_eval_net("clip_vit_l14", find_weights("clip_vit_l14", home))  # type: ignore[arg-type]
    assert clip.shape == SMALL_VIT and clip.proj.dtype == torch.float32
    with pytest.raises(ModelFormatError, match="cannot read the AlexNet"):
        load_eval_net("alexnet", find_weights("alexnet", home))  # type: ignore[arg-type]

    for pattern in ("alexnet-owt-*", "vgg19-*", "inception_v3_google-*"):
        for path in (home / "weights").glob(pattern):
            path.unlink()
    recon_dir, images_dir = _recon_folder(tmp_path)
    result = evaluate_recon(
        recon_dir, images_dir, suites=["nsd"], suite_options=SuiteOptions(home=home),
        n_boot=10, device="cpu",
    )  # fmt: skip
    scores = result["suites"]["nsd"]["rows"][0]["scores"]
    assert all(scores[k] is not None for k in ("effnet", "swav"))
    assert scores["alexnet2"] is None and scores["inception"] is None
    # The loopback server's files are not the official releases: used, labelled unverified;
    # its CLIP archive is TorchScript (code), so it is loaded only when the checksum matches.
    assert scores["clip"] is None
    nsd = result["suites"]["nsd"]
    assert {k: v["status"] for k, v in nsd["weights"].items()} == {
        "efficientnet_b1": "unverified", "swav_resnet50": "unverified",
    }  # fmt: skip
    missing = nsd["missing"]
    assert set(missing) == {"alexnet", "inception_v3", "clip_vit_l14"}
    assert "run `e2e-recon download eval-nets`" in missing["alexnet"]
    assert missing["clip_vit_l14"].startswith("unverified: ViT-L-14.pt, SHA-256")


def test_a_swav_file_that_is_not_a_resnet50_is_refused_and_deleted(
    server: FakeFigshare, tmp_path: Path
) -> None:
    sources, _ = _publish(server, swav=_saved({"module.conv1.weight": torch.zeros(3)}))
    with pytest.raises(DownloadError, match=r"do not fit the architecture.*deleted"):
        dl.download("eval-nets", dest=tmp_path, sources=sources, options=FAST, show_progress=False)
    assert not (tmp_path / "weights" / "swav_800ep_pretrain.pth.tar").exists()


def test_clip_checksum_mismatch_is_refused(server: FakeFigshare, tmp_path: Path) -> None:
    sources, contents = _publish(server)
    url = dict(sources.eval_net_urls)["clip_vit_l14"]
    server.files[url.removeprefix(server.url)] = contents["clip_vit_l14"] + b"tampered"
    with pytest.raises(DownloadError, match=r"checksum mismatch for ViT-L-14\.pt"):
        dl.download("eval-nets", dest=tmp_path, sources=sources, options=FAST, show_progress=False)


def test_a_file_placed_by_hand_is_used_and_labelled_unverified(tmp_path: Path) -> None:
    """A hand-placed file (no download record) is used, but named "unverified" with its
    SHA-256 in the notices, the table and metrics.json: its content is not the release."""
    from e2e_recon.evaluate.evaluate import evaluate_recon
    from e2e_recon.evaluate.suites import SuiteOptions, suite_tables

    weights = tmp_path / "weights"
    weights.mkdir()
    path = weights / "efficientnet_b1-c27df63c.pth"
    torch.save(EfficientNetB1().state_dict(), path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert find_weights("efficientnet_b1", tmp_path) == path
    source = NetSource(tmp_path)
    with source.open("efficientnet_b1") as net:
        assert net is not None
    assert source.weights["efficientnet_b1"]["status"] == "unverified"
    assert source.used["efficientnet_b1"].startswith("unverified: efficientnet_b1-c27df63c.pth")
    assert sha256 in source.notices()[0]

    recon_dir, images_dir = _recon_folder(tmp_path, n_images=3)
    result = evaluate_recon(
        recon_dir, images_dir, suites=["nsd"], suite_options=SuiteOptions(home=tmp_path),
        n_boot=10, device="cpu",
    )  # fmt: skip
    nsd = result["suites"]["nsd"]
    assert nsd["weights"]["efficientnet_b1"] == {
        "file": path.name, "sha256": sha256, "published": "sha256-prefix c27df63c",
        "status": "unverified",
    }  # fmt: skip
    assert nsd["rows"][0]["scores"]["effnet"] is not None
    assert "IMAGENET1K_V2 (efficientnet_b1" not in str(nsd["networks"])  # not named official
    console = Console(width=400, record=True, file=io.StringIO())
    for table in suite_tables(result):
        console.print(table)
    printed = " ".join(console.export_text().split())  # the caption wraps to the table's width
    assert f"unverified: efficientnet_b1-c27df63c.pth, SHA-256 {sha256}" in printed


def test_a_file_whose_sha256_matches_is_labelled_official(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The official label needs the published checksum to match (here a release whose
    published prefix is this file's); the same file under another release is unverified."""
    import dataclasses

    from e2e_recon.evalnets import registry

    weights = tmp_path / "weights"
    weights.mkdir()
    path = weights / "efficientnet_b1-c27df63c.pth"
    torch.save(EfficientNetB1().state_dict(), path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    spec = registry.EVAL_NETS["efficientnet_b1"]
    url = spec.url.replace("c27df63c", prefix)
    monkeypatch.setitem(registry.EVAL_NETS, "efficientnet_b1", dataclasses.replace(spec, url=url))
    check = registry.check_weights("efficientnet_b1", path)
    assert check.official and check.as_dict()["status"] == "official"
    assert check.label(spec.title).startswith(f"{spec.title} (efficientnet_b1-c27df63c.pth")
    source = NetSource(tmp_path)
    with source.open("efficientnet_b1") as net:
        assert net is not None
    assert source.notices() == []
