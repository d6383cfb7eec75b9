"""Typed config loading: names, types and choices are checked with the offending path."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpt.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    load_config_file,
)
from vpt.training.sft import SFTConfig

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def test_shipped_recipes_load_and_round_trip() -> None:
    config = load_config_file(SFTConfig, RECIPES / "shapes_sft.yaml")
    assert config.transformer.patch_size == (4, 2, 2)
    assert config_from_dict(SFTConfig, config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", r"config\.optim: unknown key\(s\) lrr"),
        ("generator.prediction=noise", r"config\.generator\.prediction: 'noise' is not one of"),
        ("batch_size=big", r"config\.batch_size: expected int"),
        ("transformer.patch_size=[1,2]", r"patch_size: expected 3 items, got 2"),
        ("loop.steps=true", r"config\.loop\.steps: expected int"),
        ("data.world.frames=0", r"frames must be >= 1"),
    ],
)
def test_bad_values_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(SFTConfig, apply_overrides({}, [override]), "config")


def test_override_syntax_is_checked() -> None:
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides({}, ["no-equals-sign"])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2.5"]) == {"a": {"b": 1, "c": 2.5}}


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(SFTConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config_file(SFTConfig, bad)


def test_load_config_applies_overrides_to_a_file_or_to_the_defaults(tmp_path: Path) -> None:
    config = load_config(SFTConfig, RECIPES / "shapes_sft.yaml", ["loop.steps=7"])
    assert config.loop.steps == 7 and config.transformer.patch_size == (4, 2, 2)
    assert load_config(SFTConfig, None, ["batch_size=3"]).batch_size == 3
    with pytest.raises(ConfigError, match="no such file"):
        load_config(SFTConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"config\.loop\.steps"):
        load_config(SFTConfig, None, ["loop.steps=many"])
