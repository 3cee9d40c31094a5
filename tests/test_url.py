"""Naming a bridge: local paths and ssh:// URLs, parsed and opened."""

from __future__ import annotations

from pathlib import Path

import pytest

import bridge
from bridge import Bridge, BridgeURL, InvalidInput, parse_url


@pytest.mark.parametrize(("text", "expected"), [
    ("/var/lib/kami-bridge", BridgeURL("/var/lib/kami-bridge")),
    ("relative/dir", BridgeURL("relative/dir")),
    ("file:///var/lib/kami-bridge", BridgeURL("/var/lib/kami-bridge")),
    ("ssh://vps1/var/lib/kami-bridge", BridgeURL("/var/lib/kami-bridge", "vps1")),
    ("ssh://kami@vps1:2222/srv/b", BridgeURL("/srv/b", "vps1", "kami", 2222)),
    ("ssh://vps1/~/bridge", BridgeURL("~/bridge", "vps1")),
    ("ssh://vps1", BridgeURL(None, "vps1")),
    ("ssh://vps1/", BridgeURL(None, "vps1")),
    ("ssh://[::1]:22/b", BridgeURL("/b", "::1", None, 22)),
    ("ssh://VPS1/My%20Bridge", BridgeURL("/My Bridge", "vps1")),
    ("ssh://vps1/b?command=/opt/kb/bin/bridge",
     BridgeURL("/b", "vps1", command="/opt/kb/bin/bridge")),
    ("ssh://vps1/b?transport=sftp", BridgeURL("/b", "vps1", transport="sftp")),
    ("", BridgeURL(None)),
])
def test_parse(text: str, expected: BridgeURL) -> None:
    parsed = parse_url(text)
    assert parsed == expected
    if parsed.remote:  # the canonical form reads back as the same thing
        assert parse_url(str(parsed)) == parsed


@pytest.mark.parametrize(("text", "complaint"), [
    ("ssh://kami:hunter2@vps1/b", "passwords in URLs are refused"),
    ("ftp://vps1/b", "unsupported scheme 'ftp'"),
    ("ssh:///b", "no host"),
    ("ssh://vps1:99999/b", "port must be a number"),
    ("ssh://vps1:0/b", "port must be a number"),
    ("ssh://vps1/b?colour=red", "unknown option 'colour'"),
    ("ssh://vps1/b?transport=nfs", "transport must be serve or sftp"),
    ("ssh://vps1/b#x", "no #fragment"),
    ("file://elsewhere/b", "names a local path"),
])
def test_bad_urls_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint) as info:
        parse_url(text)
    assert "hunter2" not in str(info.value)  # a password never reaches an error message


def test_connect_opens_a_local_path_as_a_bridge(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with bridge.connect(str(tmp_path / "b"), agent="kami") as b:
        assert isinstance(b, Bridge) and b.directory == tmp_path / "b"
        b.send("local")
    monkeypatch.setenv("BRIDGE_URL", str(tmp_path / "env"))
    with bridge.connect(agent="kami", durability="none") as b:
        assert isinstance(b, Bridge) and b.directory == tmp_path / "env"
    with pytest.raises(TypeError, match="colour"):
        bridge.connect(str(tmp_path / "b"), colour="red")
