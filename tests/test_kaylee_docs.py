"""docs/kaylee.md stays true: every TOML example in it is a configuration Kaylee accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.runtime import load_config
from kaylee import KayleeConfig
from kaylee._recipes import build_recipes
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "kaylee.md").read_text()
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, re.S)
ENV = {"KAYLEE_GREEN_API_TOKEN": "t" * 20, "KAYLEE_ANTHROPIC_API_KEY": "k" * 20}


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.split("\n", 1)[0][:30] for b in BLOCKS])
def test_each_example_is_a_valid_configuration(tmp_path: Path, block: str) -> None:
    # The routes the recipes name are defined in the page's [models] example.
    models = next(b for b in BLOCKS if b.startswith("[models]"))
    path = tmp_path / "kaylee.toml"
    path.write_text(block if "[models]" in block else block + "\n" + models)
    config = load_config(KayleeConfig, "kaylee", path, env=ENV)
    build_recipes(config)


def test_the_documented_settings_are_the_real_defaults() -> None:
    config = KayleeConfig()
    for name, shown in [("concurrency", "1"), ("lease", "`60s`"), ("stop_grace", "`15s`"),
                        ("confirm_timeout", "`1h`"), ("schedule_grace", "`2m`")]:
        assert f"| `{name}` | {shown} |" in DOC
        assert getattr(config, name) is not None
    assert (config.lease, config.stop_grace, config.confirm_timeout) == (60.0, 15.0, 3600.0)
    assert config.health.port == 8082 and config.deploy.confirm is True
