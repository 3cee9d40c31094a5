"""connect(): the scheme registry and the environment read in one place (issue 13, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bridge
from bridge import Bridge, ConfigError, Environment, InvalidInput, NotFound, connect
from bridge.memory import MemoryBridge, forget


def test_the_environment_names_the_bridge_and_its_options(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_URL", raising=False)
    monkeypatch.setenv("BRIDGE_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("BRIDGE_AGENT", "kaylee")
    monkeypatch.setenv("BRIDGE_DURABILITY", "none")
    with connect() as b:
        assert isinstance(b, Bridge)
        assert b.directory == tmp_path / "b" and b.agent == "kaylee"
        assert b.durability == "none"
    # BRIDGE_URL wins over BRIDGE_DIR; an explicit argument over both.
    monkeypatch.setenv("BRIDGE_URL", "memory://from-env")
    with connect() as m:
        assert isinstance(m, MemoryBridge) and str(m.url) == "memory://from-env"
    with connect(tmp_path / "c", agent="kami", durability="batch") as c:
        assert c.directory == tmp_path / "c" and c.agent == "kami" and c.durability == "batch"
    forget("from-env")


def test_a_bad_durability_in_the_environment_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_DURABILITY", "sometimes")
    with pytest.raises(ConfigError, match="BRIDGE_DURABILITY"):
        Environment.read()
    with pytest.raises(ConfigError):
        connect("memory://x")
    assert Environment.read({"BRIDGE_DURABILITY": "", "BRIDGE_DIR": ""}) == Environment()


def test_options_of_another_backend_are_ignored_and_unknown_ones_refused(
        tmp_path: Path) -> None:
    # A program passes its SSH settings whatever its bridge turns out to be.
    with connect(tmp_path / "b", agent="kami", connect_timeout=5.0, known_hosts=None) as b:
        assert isinstance(b, Bridge)
    with pytest.raises(TypeError, match="colour"):
        connect(tmp_path / "b", agent="kami", colour="blue")


def test_memory_names_are_shared_until_forgotten() -> None:
    with pytest.raises(NotFound):
        connect("memory://nobody-yet", create=False)
    a = connect("memory://shared", agent="kami")
    b = connect("memory://shared", agent="kaylee")
    mid = a.send("hi", to="kaylee").id
    assert b.get(mid).message.content == "hi"
    assert forget("shared") and not forget("shared")
    with connect("memory://shared", agent="kami") as fresh, pytest.raises(NotFound):
        fresh.get(mid)
    with pytest.raises(InvalidInput):
        connect("memory://", agent="kami")
    assert bridge.connect is connect
