"""The Green API client against the simulator: real httpx, real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import socket

import pytest

from bridge.runtime import register_secret, setup_logging
from bridge.runtime.greenapi import (
    GreenApiAuthError,
    GreenApiClient,
    GreenApiQuotaExceeded,
    GreenApiRateLimited,
    GreenApiRejected,
    GreenApiSendUncertain,
    GreenApiUnavailable,
    parse_notification,
)
from bridge.testing.greenapi import GreenApiSimulator

OWNER = "972501234567@c.us"


def client_for(sim: GreenApiSimulator, **kw: object) -> GreenApiClient:
    options: dict[str, object] = {"retry_delay": 0.01, "retry_cap": 0.05, "rate_limits": {},
                                  "default_rate": 0}
    options.update(kw)
    return GreenApiClient(sim.api_url, sim.id_instance, sim.token, **options)  # type: ignore[arg-type]


def test_send_receive_delete_round_trip(sim: GreenApiSimulator) -> None:
    with client_for(sim) as client:
        mid = client.send_message(OWNER, "שלום 👋 world", quoted_message_id="ABC")
        [sent] = sim.sent
        assert (sent.chat_id, sent.message, sent.id_message) == (OWNER, "שלום 👋 world", mid)
        assert sent.quoted_message_id == "ABC"
        incoming = sim.send_text(OWNER, "hi")
        statuses = []
        while True:
            got = client.receive_notification(5)
            assert got is not None
            note = parse_notification(got.body)
            assert client.delete_notification(got.receipt_id) is True
            assert client.delete_notification(got.receipt_id) is False  # already gone
            if getattr(note, "id_message", None) == incoming:
                break
            statuses.append(note)
        assert [getattr(s, "status", None) for s in statuses] == ["sent", "delivered"]


def test_the_same_head_comes_back_until_deleted(sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "first")
    sim.send_text(OWNER, "second")
    with client_for(sim) as client:
        a = client.receive_notification()
        b = client.receive_notification()
        assert a is not None and b is not None
        assert a.receipt_id == b.receipt_id
        client.delete_notification(a.receipt_id)
        c = client.receive_notification()
        assert c is not None
        assert c.body["messageData"]["textMessageData"]["textMessage"] == "second"


def test_an_empty_queue_answers_null_after_the_long_poll(sim: GreenApiSimulator) -> None:
    with client_for(sim) as client:
        assert client.receive_notification(5) is None
    assert sim.calls_to("receiveNotification")[0].status == 200


def test_wrong_token_and_wrong_instance_are_config_errors(sim: GreenApiSimulator) -> None:
    with GreenApiClient(sim.api_url, sim.id_instance, "0" * 50, retry_delay=0.01) as bad:
        with pytest.raises(GreenApiAuthError, match=r"refused the token \(HTTP 401") as info:
            bad.receive_notification()
        assert info.value.status == 401
    with GreenApiClient(sim.api_url, 999, sim.token, retry_delay=0.01) as bad, \
            pytest.raises(GreenApiAuthError, match=r"refused the instance \(HTTP 403"):
        bad.send_message(OWNER, "x")
    assert len(sim.calls) == 2  # never retried
    assert sim.sent == []


def test_the_token_never_reaches_an_error_message(sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 400, body={"statusCode": 400, "path":
                                       f"/waInstance{sim.id_instance}/sendMessage/{sim.token}",
                                       "message": f"Validation failed for {sim.token}"})
    with client_for(sim) as client, pytest.raises(GreenApiRejected) as info:
        client.send_message(OWNER, "x")
    assert sim.token not in str(info.value)


def test_429_and_5xx_are_retried_with_backoff(sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 429, times=2)
    sim.fail("getStateInstance", 502, times=2)
    sim.fail("getStateInstance", 500)
    sim.fail("receiveNotification", 503)
    with client_for(sim) as client:
        assert client.send_message(OWNER, "after two 429s")
        assert client.get_state_instance() == "authorized"
        assert client.receive_notification() is not None  # the send's status
    assert [c.status for c in sim.calls_to("sendMessage")] == [429, 429, 200]
    assert [c.status for c in sim.calls_to("getStateInstance")] == [502, 502, 500, 200]
    assert len(sim.sent) == 1


def test_retries_run_out(sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 429, times=10)
    sim.fail("getSettings", 502, times=10)
    with client_for(sim, retries=2) as client:
        with pytest.raises(GreenApiRateLimited, match="HTTP 429"):
            client.send_message(OWNER, "x")
        with pytest.raises(GreenApiUnavailable, match="HTTP 502"):
            client.get_settings()
    assert len(sim.calls_to("sendMessage")) == 3
    assert sim.sent == []


def test_a_502_send_is_repeated_but_a_500_is_uncertain(sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 502)  # the gateway: the service was not reached
    with client_for(sim) as client:
        client.send_message(OWNER, "one")
        sim.fail("sendMessage", 500, perform=True)  # the service sent it, then failed
        with pytest.raises(GreenApiSendUncertain, match="may have been sent"):
            client.send_message(OWNER, "two")
        assert [m.message for m in sim.sent] == ["one", "two"]
        journal = client.last_outgoing_messages(5)
        assert [r.text for r in journal] == ["two", "one"]
        assert journal[0].chat_id == OWNER
        assert journal[0].send_by_api


def test_a_timeout_after_the_send_is_never_repeated_blindly(sim: GreenApiSimulator) -> None:
    sim.delay("sendMessage", 1.0)
    with client_for(sim, timeout=0.3) as client:
        with pytest.raises(GreenApiSendUncertain, match="no answer after the request was sent"):
            client.send_message(OWNER, "held")
        assert len(sim.calls_to("sendMessage")) == 1
        assert [m.message for m in sim.sent] == ["held"]
        assert [r.text for r in client.last_outgoing_messages(1)] == ["held"]


def test_a_timed_out_read_is_repeated(sim: GreenApiSimulator) -> None:
    sim.delay("getSettings", 1.0)
    with client_for(sim, timeout=0.3) as client:
        assert client.get_settings()["incomingWebhook"] == "yes"
    assert len(sim.calls_to("getSettings")) == 2


def test_non_json_bodies(sim: GreenApiSimulator) -> None:
    sim.fail("getStateInstance", 200, body=b"<html>maintenance</html>")
    sim.fail("sendMessage", 200, body=b"<html>oops</html>", perform=True)
    with client_for(sim) as client:
        assert client.get_state_instance() == "authorized"  # retried
        with pytest.raises(GreenApiSendUncertain, match="not JSON"):
            client.send_message(OWNER, "x")
    assert len(sim.sent) == 1


def test_466_bodies_are_parsed(sim: GreenApiSimulator) -> None:
    sim.fail_quota(kind="method")
    sim.fail_quota(kind="correspondents")
    with client_for(sim) as client:
        with pytest.raises(GreenApiQuotaExceeded) as method:
            client.send_message(OWNER, "x")
        with pytest.raises(GreenApiQuotaExceeded) as chats:
            client.send_message(OWNER, "x")
    assert (method.value.kind, method.value.used, method.value.total) == ("method", 100, 100)
    assert "Monthly quota" in (method.value.description or "")
    assert chats.value.kind == "correspondents"
    assert "limit of chats" in str(chats.value)
    assert len(sim.calls_to("sendMessage")) == 2  # not retried


def test_instance_starting_is_transient(sim: GreenApiSimulator) -> None:
    sim.fail("sendMessage", 400, body={"statusCode": 400,
                                       "message": "instance in starting process try later"})
    with client_for(sim) as client:
        client.send_message(OWNER, "x")
    assert [c.status for c in sim.calls_to("sendMessage")] == [400, 200]


def test_validation_and_unknown_methods_are_rejected(sim: GreenApiSimulator) -> None:
    with client_for(sim) as client:
        with pytest.raises(GreenApiRejected, match="less than or equal to 20000"):
            client.send_message(OWNER, "😀" * 10_001)  # 20,002 UTF-16 code units
        with pytest.raises(GreenApiRejected, match="has no method noSuchMethod"):
            client.call("GET", "noSuchMethod")
    assert sim.sent == []


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with GreenApiClient(f"http://127.0.0.1:{port}", 1, "t" * 50, retries=1,
                        retry_delay=0.01) as client, \
            pytest.raises(GreenApiUnavailable, match="cannot connect"):
        client.send_message(OWNER, "x")


def test_requests_are_paced_below_the_documented_limits() -> None:
    # The simulator enforces the documented per-second limits with 429s; paced
    # requests never hit them, unpaced ones do.
    with GreenApiSimulator(rate_limits=True) as sim:
        with client_for(sim, rate_limits={"sendMessage": 50}, default_rate=1, retries=0) as c:
            for i in range(70):
                c.send_message(OWNER, f"paced {i}")
        assert sim.rate_limited == 0
        refused = []
        with client_for(sim, retries=0) as unpaced:
            for i in range(200):
                try:
                    unpaced.send_message(OWNER, f"burst {i}")
                except GreenApiRateLimited as exc:
                    refused.append(exc.status)
                    break
        assert refused == [429]
        assert sim.rate_limited == 1


def test_client_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="must be digits"):
        GreenApiClient("https://x.example", "12a", "token")
    with pytest.raises(ValueError, match="http"):
        GreenApiClient("ftp://x.example", 1, "token")
    with pytest.raises(ValueError, match="token is empty"):
        GreenApiClient("https://x.example", 1, "")


def test_no_log_line_holds_the_token(sim: GreenApiSimulator) -> None:
    """httpx logs every request URL (the token is in its path); at debug level too."""
    stream = io.StringIO()
    handlers = setup_logging("kami", level="debug", stream=stream)
    try:
        with client_for(sim) as client:
            client.send_message(OWNER, "x")
            got = client.receive_notification()
            assert got is not None
            client.delete_notification(got.receipt_id)
            sim.fail("getSettings", 502)
            client.get_settings()
        # And once registered, as the config loader does, also where no pattern matches.
        register_secret(sim.token)
        logging.getLogger("bridge.test").info("token %s in a sentence", sim.token)
    finally:
        root = logging.getLogger()
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(logging.WARNING)
    text = stream.getvalue()
    assert "waInstance" in text  # httpx's request lines are there, masked
    assert sim.token not in text
