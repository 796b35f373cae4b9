from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from e2e_recon.config import (
    PRESETS_DIR,
    Config,
    dump_yaml,
    from_dict,
    load_config,
    preset_names,
    save_config,
    to_dict,
    with_overrides,
)
from e2e_recon.errors import ConfigError


def test_presets_are_shipped() -> None:
    assert {"paper", "demo"} <= set(preset_names())


def test_paper_preset_holds_the_published_settings() -> None:
    cfg = load_config("paper")
    assert (cfg.data.image_size_px, cfg.data.crop_px) == (248, 227)
    assert cfg.train.batch_size == 64
    assert cfg.train.lr == pytest.approx(2e-4)
    assert cfg.train.betas == (0.9, 0.999)
    assert cfg.train.discriminator_weight_decay == pytest.approx(4e-4)
    assert cfg.train.generator_weight_decay == 0.0
    assert (cfg.loss.image_weight, cfg.loss.feature_weight, cfg.loss.adversarial_weight) == (
        2e-6,
        0.01,
        100.0,
    )
    assert (
        cfg.train.balance_stop_d_below,
        cfg.train.balance_resume_d_above,
        cfg.train.balance_stop_g_above,
    ) == (0.1, 0.5, 10.0)
    assert cfg.train.lr_halve_at_iters == (300_000, 500_000, 700_000, 900_000, 1_100_000)
    assert cfg.train.iters == 500_000
    assert cfg.train.snapshot_every_iters == 10_000
    assert cfg.recon.scale == "sqrt_n"
    assert cfg.model.comparator == "caffenet"
    assert cfg.model.feature_layers == ("pool5",)
    assert (cfg.model.fc_width, cfg.model.output_size_px) == (4096, 256)


def test_paper_preset_sets_every_key_explicitly() -> None:
    raw = yaml.safe_load(Path("configs/paper.yaml").read_text())
    defaults = to_dict(Config())
    for section, values in defaults.items():
        if isinstance(values, dict):
            missing = set(values) - set(raw[section]) - {"train_fmri", "test_fmri", "images_dir"}
            missing -= {"cache_dir", "drop_nonfinite_voxels", "comparator_path"}
            missing -= {"best_metric", "best_min_delta"}  # validation is off in paper
            assert not missing, f"paper.yaml leaves {section}.{sorted(missing)} to defaults"


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        "demo", ["train.batch_size=8", "loss.feature_weight=0", "model.feature_layers=[a, b]"]
    )
    assert cfg.train.batch_size == 8
    assert cfg.loss.feature_weight == 0.0 and isinstance(cfg.loss.feature_weight, float)
    assert cfg.model.feature_layers == ("a", "b")
    assert load_config("demo", ["train.lr=1e-3"]).train.lr == pytest.approx(1e-3)


def test_config_is_frozen() -> None:
    cfg = load_config("demo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.bach_size=8", "did you mean 'train.batch_size'"),
        ("trian.batch_size=8", "did you mean 'train'"),
        ("loss.feature_wieght=1", "did you mean 'loss.feature_weight'"),
    ],
)
def test_key_typo_names_the_nearest_valid_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config("demo", [override])


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        load_config("demo", ["train.batch_size=many"])


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config("demo", ["train.batch_size"])


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="paper"):
        load_config("papper")


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    cfg = with_overrides(load_config("paper"), ["train.iters=7", "data.test_fmri=[a.h5, b.h5]"])
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_presets_win_over_folders_and_files_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config small`` is the preset even with a folder or file named ``small`` here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").mkdir()
    (tmp_path / "demo").write_text("train: {iters: 3}\n")
    assert load_config("small") == load_config(PRESETS_DIR / "small.yaml")
    assert load_config("demo").train.iters != 3
    assert load_config("./demo").train.iters == 3
    (tmp_path / "mine").write_text("train: {iters: 4}\n")
    with pytest.raises(ConfigError, match=r"write \./mine"):
        load_config("mine")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("small/")
