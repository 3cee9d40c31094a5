"""The simulator speaks the real wire format (green-api.md §6), checked with raw HTTP."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bridge.testing.greenapi import GreenApiSimulator, main
from tests.helpers import wait_for

OWNER = "972501234567@c.us"


def url(sim: GreenApiSimulator, method: str, *extra: str, token: str | None = None,
        instance: int | None = None) -> str:
    tail = "/".join([token or sim.token, *extra])
    return f"{sim.api_url}/waInstance{instance or sim.id_instance}/{method}/{tail}"


def test_routing_and_credentials(sim: GreenApiSimulator) -> None:
    assert httpx.get(url(sim, "getStateInstance")).json() == {"stateInstance": "authorized"}
    assert httpx.get(url(sim, "GetStateInstance")).status_code == 200  # any case
    assert httpx.get(url(sim, "getStateInstance", token="0" * 50)).status_code == 401
    assert httpx.get(url(sim, "getStateInstance", instance=7)).status_code == 403
    assert httpx.get(url(sim, "noSuchMethod")).status_code == 404
    assert httpx.get(url(sim, "sendMessage")).status_code == 404  # wrong verb


def test_send_validation_body(sim: GreenApiSimulator) -> None:
    r = httpx.post(url(sim, "sendMessage"), json={"message": "x"})
    assert r.status_code == 400
    doc = r.json()
    assert doc["statusCode"] == 400
    assert doc["message"] == "Validation failed. Details: 'chatId' is required"
    assert set(doc) == {"statusCode", "timestamp", "path", "message"}
    assert httpx.post(url(sim, "sendMessage"), json={"chatId": "x@c.us", "message": "x"}
                      ).status_code == 400
    assert httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": ""}
                      ).status_code == 400
    assert "20000" in httpx.post(url(sim, "sendMessage"),
                                 json={"chatId": OWNER, "message": "a" * 20001}).json()["message"]
    assert httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "a" * 20000}
                      ).status_code == 200
    assert httpx.post(url(sim, "sendMessage"), content=b"{nope").status_code == 400


def test_escaped_json_is_the_same_text(sim: GreenApiSimulator) -> None:
    body = json.dumps({"chatId": OWNER, "message": "שלום 👋"}, ensure_ascii=True)
    assert "\\u05e9" in body
    r = httpx.post(url(sim, "sendMessage"), content=body,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert set(r.json()) == {"idMessage"}
    assert sim.texts() == ["שלום 👋"]


def test_queue_semantics(sim: GreenApiSimulator) -> None:
    first = sim.send_text(OWNER, "one")
    sim.send_text(OWNER, "two")
    a = httpx.get(url(sim, "receiveNotification"), params={"receiveTimeout": 5}).json()
    b = httpx.get(url(sim, "receiveNotification")).json()
    assert a == b
    assert a["body"]["idMessage"] == first
    deleted = httpx.delete(url(sim, "deleteNotification", str(a["receiptId"]))).json()
    assert deleted == {"result": True, "reason": ""}
    again = httpx.delete(url(sim, "deleteNotification", str(a["receiptId"]))).json()
    assert again["result"] is False
    assert httpx.delete(url(sim, "deleteNotification", "nonsense")).json()["result"] is False
    c = httpx.get(url(sim, "receiveNotification")).json()
    assert c["body"]["messageData"]["textMessageData"]["textMessage"] == "two"


def test_long_poll_answers_as_soon_as_something_arrives(sim: GreenApiSimulator) -> None:
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(httpx.get(
        url(sim, "receiveNotification"), params={"receiveTimeout": 60}, timeout=70).json()))
    t.start()
    wait_for(lambda: sim.polling == 1, what="the long poll to wait")
    sim.send_text(OWNER, "wake up")
    t.join(timeout=10)
    assert got[0]["body"]["messageData"]["textMessageData"]["textMessage"] == "wake up"


def test_long_poll_times_out_with_json_null(sim: GreenApiSimulator) -> None:
    r = httpx.get(url(sim, "receiveNotification"), params={"receiveTimeout": 1}, timeout=30)
    assert (r.status_code, r.content) == (200, b"null")  # clamped to 5 s, then null


def test_statuses_follow_a_send_and_failures_cannot_be_switched_off(
        sim: GreenApiSimulator) -> None:
    sim.fail_chat("972500000009@c.us", "noAccount")
    ok = httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "hi"}).json()
    bad = httpx.post(url(sim, "sendMessage"), json={"chatId": "972500000009@c.us",
                                                    "message": "hi"}).json()
    statuses = [(b["idMessage"], b["status"]) for b in sim.pending()]
    assert statuses == [(ok["idMessage"], "sent"), (ok["idMessage"], "delivered"),
                        (bad["idMessage"], "noAccount")]
    assert sim.pending()[2]["description"] == "SWE004: 1000"
    assert "senderData" not in sim.pending()[0]  # chatId sits at the top level
    sim.settings["outgoingWebhook"] = "no"
    sim.inject({"marker": True})
    httpx.post(url(sim, "sendMessage"), json={"chatId": "972500000009@c.us", "message": "x"})
    assert sim.pending()[-1]["status"] == "noAccount"


def test_not_authorised_sends_wait_in_a_queue(sim: GreenApiSimulator) -> None:
    sim.set_state("notAuthorized")
    r = httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "later"})
    assert r.status_code == 200  # the gotcha: 200 all the same
    assert sim.sent == []
    assert httpx.get(url(sim, "getStateInstance")).json()["stateInstance"] == "notAuthorized"
    sim.set_state("authorized")
    assert sim.texts() == ["later"]
    kinds = [b.get("stateInstance") for b in sim.pending() if b["typeWebhook"] ==
             "stateInstanceChanged"]
    assert kinds == ["notAuthorized", "authorized"]


def test_settings_and_small_methods(sim: GreenApiSimulator) -> None:
    settings = httpx.get(url(sim, "getSettings")).json()
    assert settings["incomingWebhook"] == "yes"
    assert settings["wid"] == sim.wid
    assert httpx.post(url(sim, "setSettings"), json={}).status_code == 400
    assert httpx.post(url(sim, "setSettings"), json={"outgoingWebhook": "no"}).json() == \
        {"saveSettings": True}
    assert httpx.get(url(sim, "getSettings")).json()["outgoingWebhook"] == "no"
    assert httpx.post(url(sim, "readChat"), json={"chatId": OWNER}).json() == {"setRead": True}
    typing = httpx.post(url(sim, "sendTyping"), json={"chatId": OWNER})
    assert (typing.status_code, typing.content) == (200, b"")
    file = httpx.post(url(sim, "sendFileByUrl"), json={
        "chatId": OWNER, "urlFile": "https://x.example/a.pdf", "fileName": "a.pdf",
        "caption": "report"})
    assert "idMessage" in file.json()
    journal = httpx.get(url(sim, "lastOutgoingMessages"), params={"minutes": 5}).json()
    assert journal[0]["textMessage"] == "report"
    assert journal[0]["type"] == "outgoing"


def test_faults(sim: GreenApiSimulator) -> None:
    sim.fail("*", 502)
    r = httpx.get(url(sim, "getSettings"))
    assert r.status_code == 502
    assert r.text.startswith("<html>")
    sim.fail_quota(kind="correspondents")
    doc = httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "x"}).json()
    assert doc["correspondentsStatus"]["status"] == "CORRESPONDENTS_QUOTE_EXCEEDED"
    sim.fail("sendMessage", 500, perform=True)
    assert httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "did it"}
                      ).status_code == 500
    assert sim.texts() == ["did it"]  # performed, then failed
    sim.outage(502)
    assert httpx.get(url(sim, "getStateInstance")).status_code == 502
    assert httpx.get(url(sim, "getStateInstance", token="wrong")).status_code == 502
    sim.outage(None)
    assert httpx.get(url(sim, "getStateInstance")).status_code == 200


def test_timeout_after_the_send_happened(sim: GreenApiSimulator) -> None:
    sim.delay("sendMessage", 1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "sent anyway"},
                   timeout=0.2)
    assert sim.texts() == ["sent anyway"]


def test_a_stall_holds_the_request_before_doing_anything(sim: GreenApiSimulator) -> None:
    sim.stall("sendMessage", 5.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url(sim, "sendMessage"), json={"chatId": OWNER, "message": "held"},
                   timeout=0.3)
    assert sim.stalled == 1
    assert sim.sent == []  # nothing done while it is held


def test_refused_then_back_on_the_same_port(sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "kept")
    port = sim.port
    with httpx.Client() as client:  # a kept-alive connection is cut too
        assert client.get(url(sim, "getStateInstance")).status_code == 200
        sim.refuse()
        with pytest.raises(httpx.TransportError):
            client.get(url(sim, "getStateInstance"))
    with pytest.raises(httpx.ConnectError):
        httpx.get(url(sim, "getStateInstance"))
    sim.accept()
    assert sim.port == port
    assert httpx.get(url(sim, "receiveNotification")).json()["body"]["senderData"]["chatId"] \
        == OWNER


def test_rate_limits_answer_429() -> None:
    with GreenApiSimulator(rate_limits=True) as sim, httpx.Client() as client:
        codes = [client.get(url(sim, "getStateInstance")).status_code for _ in range(3)]
    assert codes == [200, 429, 429]
    assert sim.rate_limited == 2


class _Receiver:
    """A webhook endpoint that fails its first answer."""

    def __init__(self) -> None:
        self.posts: list[tuple[str | None, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((self.headers.get("Authorization"), body))
                self.send_response(500 if len(outer.posts) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_webhook_push_with_bearer_and_resend() -> None:
    receiver = _Receiver()
    try:
        with GreenApiSimulator(webhook_retry=0.05) as sim:
            first = sim.send_text(OWNER, "one")
            second = sim.send_text(OWNER, "two")
            sim.settings.update(webhookUrl=receiver.url, webhookUrlToken="hook-secret")
            wait_for(lambda: len(receiver.posts) >= 3, what="three webhook posts")
            assert httpx.get(url(sim, "receiveNotification")).status_code == 400
            wait_for(lambda: not sim.pending(), what="the queue to empty")
    finally:
        receiver.close()
    ids = [body["idMessage"] for _, body in receiver.posts]
    assert ids[:3] == [first, first, second]  # refused once: sent again, in order
    assert {auth for auth, _ in receiver.posts} == {"Bearer hook-secret"}


def test_the_phone_on_a_terminal() -> None:
    lines: list[str] = []
    stdin = io.StringIO("hello kami\n\n")
    assert main(["--port", "0", "--owner", OWNER], stdin=stdin, echo=lines.append) == 0
    assert "token" in lines[0]
