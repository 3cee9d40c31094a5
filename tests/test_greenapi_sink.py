"""The shared [whatsapp] configuration and the alert sink Kaylee (and Kami) use."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge import ConfigError
from bridge.runtime import AgentConfig, PeerConfig, Secret, load_config
from bridge.runtime._peers import PeerMonitor
from bridge.runtime.greenapi import GreenApiClient, GreenApiConfig, GreenApiError, GreenApiSink
from bridge.testing.greenapi import GreenApiSimulator

OWNERS = ("972501234567@c.us", "120650379300963@lid")


@dataclass(frozen=True)
class WorkerConfig(AgentConfig):
    """An agent with a [whatsapp] section, as Kaylee has."""

    name: str = "kaylee"
    whatsapp: GreenApiConfig = field(default_factory=GreenApiConfig)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kaylee.toml"
    path.write_text(text)
    return path


def good_toml(sim: GreenApiSimulator) -> str:
    return (f'[whatsapp]\napi_url = "{sim.api_url}"\nid_instance = {sim.id_instance}\n'
            f'owners = ["{OWNERS[0]}", "{OWNERS[1]}"]\nretry_delay = "10ms"\n')


def test_config_from_toml_and_credential(tmp_path: Path, sim: GreenApiSimulator) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "green-api-token").write_text(sim.token + "\n")
    config = load_config(WorkerConfig, "kaylee", write(tmp_path, good_toml(sim)),
                         env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.whatsapp.configured
    assert config.whatsapp.owners == OWNERS
    assert repr(config.whatsapp.token) == "Secret('***')"
    with config.whatsapp.client() as client:
        assert client.get_state_instance() == "authorized"


def test_not_configured_is_valid() -> None:
    config = load_config(WorkerConfig, "kaylee", env={})
    assert not config.whatsapp.configured


@pytest.mark.parametrize(("toml", "error"), [
    ('[whatsapp]\nid_instance = 1\nowners = ["972501234567@c.us"]', "whatsapp.api_url: required"),
    ('[whatsapp]\napi_url = "http://api.example"\nid_instance = 1\n'
     'owners = ["972501234567@c.us"]', "must be https"),
    ('[whatsapp]\napi_url = "https://api.example"\nowners = ["972501234567@c.us"]',
     "whatsapp.id_instance: required"),
    ('[whatsapp]\napi_url = "https://api.example"\nid_instance = 1', "at least one owner"),
    ('[whatsapp]\napi_url = "https://api.example"\nid_instance = 1\n'
     'owners = ["120363043968066561@g.us"]', "not a personal chat id"),
    ('[whatsapp]\napi_url = "https://api.example"\nid_instance = 1\n'
     'owners = ["972501234567@c.us"]', "no Green API token"),
    ('[whatsapp]\napi_url = "https://api.example"\nid_instance = 1\ntoken = "abc"',
     "secrets are not read from the config file"),
])
def test_config_errors_name_the_key(tmp_path: Path, toml: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(WorkerConfig, "kaylee", write(tmp_path, toml), env={})


def test_token_from_the_environment(tmp_path: Path, sim: GreenApiSimulator) -> None:
    config = load_config(WorkerConfig, "kaylee", write(tmp_path, good_toml(sim)),
                         env={"KAYLEE_GREEN_API_TOKEN": sim.token})
    assert config.whatsapp.token is not None
    assert config.whatsapp.token.reveal() == sim.token


def down_peer() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/health"


def test_peer_alerts_reach_every_owner(sim: GreenApiSimulator) -> None:
    with _client(sim) as client:
        sink = GreenApiSink(client, OWNERS, prefix="[kaylee] ")
        monitor = PeerMonitor([PeerConfig("kami", down_peer())], failures=1, timeout=1,
                              sinks=[sink])
        monitor.check_all()
    sent = sim.wait_sent(2)
    assert {m.chat_id for m in sent} == set(OWNERS)
    assert all(m.message.startswith("[kaylee] ⚠️ kami is down") for m in sent)
    assert all(m.body.get("linkPreview") is False for m in sent)


def test_a_failing_send_is_reported_and_the_other_owner_still_gets_it(
        sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 466, body={"invokeStatus": {"status": "QUOTE_EXCEEDED"}})
    errors: list[Exception] = []
    with _client(sim) as client:
        monitor = PeerMonitor([PeerConfig("kami", down_peer())], failures=1, timeout=1,
                              sinks=[GreenApiSink(client, OWNERS)],
                              on_sink_error=lambda sink, exc: errors.append(exc))
        monitor.check_all()
    assert len(errors) == 1
    assert isinstance(errors[0], GreenApiError)
    assert OWNERS[0] in str(errors[0])
    assert [m.chat_id for m in sim.sent] == [OWNERS[1]]


def _client(sim: GreenApiSimulator) -> GreenApiClient:
    config = GreenApiConfig(api_url=sim.api_url, id_instance=sim.id_instance,
                            token=Secret(sim.token), owners=OWNERS)
    return config.client(retry_delay=0.01)
