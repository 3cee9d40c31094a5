"""Dead letters: messages given up on (status ``dead``) are listed by ``bridge inbox``,
on a local bridge and through an ssh:// one, the same way."""

from __future__ import annotations

from pathlib import Path

import orjson

from bridge import Bridge
from tests.conftest import CLI
from tests.sshd import SSHD


def test_inbox_lists_dead_letters_locally_and_over_ssh(sshd: SSHD, bridge_dir: Path,
                                                       tmp_path: Path, cli: CLI) -> None:
    with Bridge(bridge_dir, agent="claude") as b:
        gone = b.send("flaky job", to="kaylee").id
        b.claim(gone, lease=60, sender="kaylee")
        b.set_status(gone, "dead", reason="gave up after 3 attempts", sender="kaylee")
        waiting = b.send("next job", to="kaylee").id
        b.send("for someone else", to="kami")
        other_dead = b.send("theirs", to="kami").id
        b.set_status(other_dead, "dead", sender="kami")
        assert [v.id for v in b.dead_letters("kaylee")] == [gone]
    env = sshd.home(tmp_path / "home")
    url = sshd.url(bridge_dir)
    for args, extra in (((), {}), (("--url", url), env)):
        listed = orjson.loads(cli.ok(*args, "inbox", "--for", "kaylee", "--json", env=extra))
        assert [(i["id"], i["status"]) for i in listed] == \
            [(waiting, "pending"), (gone, "dead")]
        shown = cli.ok(*args, "inbox", "--for", "kaylee", env=extra)
        head, _, dead = shown.partition("Dead letters (1)")
        assert waiting in head and gone not in head
        assert gone in dead and other_dead not in shown
