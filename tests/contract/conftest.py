"""The contract suite's fixtures: one bridge, opened through every backend.

Every test in tests/contract takes ``backend`` (an :class:`Opened`), whose
parameter is the backend's name, so each test runs once per backend:

- ``local``: :class:`bridge.Bridge` on a directory;
- ``serve``: ``ssh://...`` through ``bridge serve --stdio`` on the session's sshd;
- ``sftp``: ``ssh://...?transport=sftp``, the fallback (nothing of the toolkit on the host);
- ``memory``: ``memory://NAME``, one bridge per name in this process.

``backend.open(agent)`` opens another client of the SAME bridge (another
connection, another Bridge object on the same directory, another connect to the
same name); every client it opened is closed after the test. Nothing here
chooses a behaviour by class: tests read ``capabilities``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import bridge
from tests.sshd import BRIDGE_COMMAND, SSHD

BACKENDS = ["local", "serve", "sftp", "memory"]


@dataclass
class Opened:
    """One bridge, and a way to open clients of it through one backend."""

    kind: str
    directory: Path | None
    """Where the bridge is on this machine (None: it lives in memory)."""
    crosses_network: bool
    """Whether its clients reach it over SSH (so ``capabilities.remote`` must say so)."""
    opener: Callable[..., bridge.Backend]
    clients: list[bridge.Backend] = field(default_factory=list)

    def open(self, agent: str = "tester", **options: Any) -> bridge.Backend:
        """A new client of this bridge (closed after the test)."""
        client = self.opener(agent, **options)
        self.clients.append(client)
        return client

    def pair(self) -> tuple[bridge.Backend, bridge.Backend]:
        """Two clients of the same bridge: ``alice`` and ``bob``."""
        return self.open("alice"), self.open("bob")

    def close_all(self) -> None:
        errors: list[BaseException] = []
        for client in reversed(self.clients):
            try:
                client.close()
            except Exception as exc:  # collected: every client is closed first
                errors.append(exc)
        self.clients.clear()
        if errors:
            raise errors[0]


def make_opened(kind: str, directory: Path, server: SSHD | None) -> Opened:
    """An :class:`Opened` for backend ``kind`` on ``directory`` (through ``server``)."""
    if kind == "local":
        def open_local(agent: str, **options: Any) -> bridge.Backend:
            return bridge.Bridge(directory, agent=agent, **options)

        return Opened(kind, directory, False, open_local)
    if kind in ("serve", "sftp"):
        assert server is not None
        query = {"transport": "sftp"} if kind == "sftp" else {}
        # The fallback runs nothing of the toolkit on the host: a command that is not there.
        command = BRIDGE_COMMAND if kind == "serve" else "/nonexistent/bridge"

        def open_ssh(agent: str, **options: Any) -> bridge.Backend:
            return bridge.connect(server.url(directory, **query),
                                  **{"agent": agent, "ssh_config": server.ssh_config,
                                     "remote_command": command, **options})

        return Opened(kind, directory, True, open_ssh)
    if kind == "memory":
        name = f"contract-{uuid.uuid4().hex}"

        def open_mem(agent: str, **options: Any) -> bridge.Backend:
            return bridge.connect(f"memory://{name}", agent=agent, **options)

        return Opened(kind, None, False, open_mem)
    raise AssertionError(f"unknown backend {kind}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    """The bridge of one test, opened through the parameter's backend."""
    kind: str = request.param
    server: SSHD | None = request.getfixturevalue("sshd") if kind in ("serve", "sftp") else None
    opened = make_opened(kind, tmp_path / "bridge", server)
    try:
        yield opened
    finally:
        opened.close_all()


@pytest.fixture
def private_backend(request: pytest.FixtureRequest, backend: Opened, tmp_path: Path
                    ) -> Iterator[tuple[Opened, SSHD | None]]:
    """The same backend through an sshd of the test's own (for tests that break it)."""
    server: SSHD | None = None
    if backend.crosses_network:
        server = request.getfixturevalue("private_sshd")
    opened = make_opened(backend.kind, tmp_path / "private-bridge", server)
    try:
        yield opened, server
    finally:
        opened.close_all()
