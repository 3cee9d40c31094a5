"""The scheduler's rules with an injected clock: catch-up, no overlap, clock jumps, bad jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime import get_logger
from kaylee._config import ReportConfig
from kaylee._ops import ReportRecipe
from kaylee._params import ParamSpec
from kaylee._recipe import Recipe, Result, TaskContext
from kaylee._schedule import Scheduler

T0 = datetime(2026, 11, 21, 8, 0, 30, tzinfo=UTC).timestamp()  # 08:00:30 UTC


class Greet(Recipe):
    name = "greet"
    params = (ParamSpec("who", choices=("world", "owner"), required=True),)

    def run(self, task: TaskContext) -> Result:
        return Result("hello")


RECIPES: dict[str, Recipe] = {"report": ReportRecipe(ReportConfig()), "greet": Greet()}


def build(tmp_path: Path, *jobs: dict[str, Any]) -> Scheduler:
    return Scheduler.build(tuple(jobs), RECIPES, tz=UTC, state_file=tmp_path / "schedule.json",
                           log=get_logger("kaylee-test"), grace=120)


HOURLY = {"name": "hourly", "cron": "0 * * * *", "recipe": "report"}


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if getattr(r, "event", None) == name]  # type: ignore[attr-defined]


def hours(n: float) -> float:
    return n * 3600


def test_a_new_job_starts_from_now_and_runs_on_its_slots(tmp_path: Path) -> None:
    s = build(tmp_path, HOURLY)
    assert s.due(T0, is_open=lambda _: False) == []  # 08:00 passed before it existed
    assert s.due(T0 + hours(0.5), is_open=lambda _: False) == []
    due = s.due(T0 + hours(1), is_open=lambda _: False)  # 09:00:30
    assert [(d.job.name, d.late, d.missed) for d in due] == [("hourly", False, 0)]
    assert due[0].key == "job:hourly:2026-11-21T09:00:00.000Z"
    assert s.due(T0 + hours(1) + 10, is_open=lambda _: False) == []  # a slot is handled once


def test_missed_runs_are_skipped_with_a_log_line_by_default(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    s = build(tmp_path, HOURLY)
    s.due(T0, is_open=lambda _: False)
    # Down from 08:00:30 to 13:20: 09, 10, 11, 12 and 13 were missed, 13:00 is 20 min late.
    assert s.due(T0 + hours(5) + 1170, is_open=lambda _: False) == []
    assert events(caplog, "job.missed")[-1]["missed"] == 5
    assert s.next_time() == datetime(2026, 11, 21, 14, tzinfo=UTC).timestamp()


def test_catch_up_once_runs_the_latest_missed_slot_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    s = build(tmp_path, {**HOURLY, "catch_up": "once"})
    s.due(T0, is_open=lambda _: False)
    due = s.due(T0 + hours(5) + 1170, is_open=lambda _: False)
    assert [(d.slot, d.late, d.missed) for d in due] == [
        (datetime(2026, 11, 21, 13, tzinfo=UTC).timestamp(), True, 5)]
    assert events(caplog, "job.catch_up")[0]["missed"] == 5
    assert s.due(T0 + hours(5) + 1200, is_open=lambda _: False) == []


def test_a_clock_jumping_forward_a_day_starts_at_most_one_run_per_job(tmp_path: Path) -> None:
    s = build(tmp_path, {**HOURLY, "catch_up": "once"},
              {"name": "minutely", "cron": "* * * * *", "recipe": "report", "catch_up": "once"})
    s.due(T0, is_open=lambda _: False)
    due = s.due(T0 + hours(24), is_open=lambda _: False)
    assert sorted(d.job.name for d in due) == ["hourly", "minutely"]
    assert s.due(T0 + hours(24) + 1, is_open=lambda _: False) == []


def test_a_clock_moving_back_is_noticed_and_no_slot_runs_twice(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    s = build(tmp_path, HOURLY)
    s.due(T0, is_open=lambda _: False)
    first = s.due(T0 + hours(1), is_open=lambda _: False)  # the 09:00 run
    assert len(first) == 1
    back = T0 + hours(1) - 1800  # the clock is set back to 08:30:30
    assert s.due(back, is_open=lambda _: False) == []
    assert events(caplog, "clock.moved_back")
    again = s.due(T0 + hours(1) + 5, is_open=lambda _: False)  # 09:00:35 again
    # The 09:00 slot comes round again: it carries the same idempotency key, so the
    # bridge appends nothing the second time (tested end to end in test_kaylee_agent).
    assert [d.key for d in again] == [first[0].key]


def test_a_job_never_overlaps_itself(tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    s = build(tmp_path, HOURLY)
    s.due(T0, is_open=lambda _: False)
    due = s.due(T0 + hours(1), is_open=lambda _: False)
    s.ran(due[0], "kaylee-01RUNNING")
    assert s.due(T0 + hours(2), is_open=lambda mid: mid == "kaylee-01RUNNING") == []
    assert events(caplog, "job.overlap")[0]["running"] == "kaylee-01RUNNING"
    assert len(s.due(T0 + hours(3), is_open=lambda _: False)) == 1


def test_the_schedule_survives_a_restart(tmp_path: Path) -> None:
    s = build(tmp_path, HOURLY)
    s.due(T0, is_open=lambda _: False)
    s.ran(s.due(T0 + hours(1), is_open=lambda _: False)[0], "kaylee-01A")
    restarted = build(tmp_path, HOURLY)
    assert restarted.states["hourly"].last_run == "kaylee-01A"
    assert restarted.due(T0 + hours(1) + 60, is_open=lambda _: False) == []  # 09:00 done


def test_an_unreadable_state_file_starts_every_job_from_now(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "schedule.json").write_text("{not json")
    s = build(tmp_path, HOURLY)
    assert events(caplog, "schedule.state_unreadable")
    assert s.due(T0, is_open=lambda _: False) == []
    assert len(s.due(T0 + hours(1), is_open=lambda _: False)) == 1


@pytest.mark.parametrize(("job", "reason"), [
    ({"name": "bad", "cron": "61 * * * *", "recipe": "report"}, "minute 61 is out of range"),
    ({"name": "bad", "cron": 5, "recipe": "report"}, "must be text"),
    ({"name": "bad", "cron": "@hourly", "recipe": "reboot"}, "recipe 'reboot' is not one"),
    ({"name": "bad", "cron": "@hourly", "recipe": "greet"}, "parameter 'who' is required"),
    ({"name": "bad", "cron": "@hourly", "recipe": "greet", "params": {"who": "; rm -rf /"}},
     "must be one of world, owner"),
    ({"name": "bad", "cron": "@hourly", "recipe": "report", "catch_up": "all"},
     "catch_up must be"),
    ({"name": "bad", "cron": "@hourly", "recipe": "report", "when": "now"},
     "unknown setting(s) when"),
    ({"name": "Bad Name", "cron": "@hourly", "recipe": "report"}, "not a job name"),
])
def test_a_broken_job_is_disabled_with_its_reason_and_the_others_run(
        tmp_path: Path, job: dict[str, Any], reason: str) -> None:
    s = build(tmp_path, job, HOURLY)
    assert [j.name for j in s.jobs] == ["hourly"]
    [(name, why)] = s.disabled.items()
    assert reason in why
    assert s.summary()[name] == {"disabled": why}
    s.due(T0, is_open=lambda _: False)
    assert len(s.due(T0 + hours(1), is_open=lambda _: False)) == 1


def test_a_job_defined_twice_keeps_the_first(tmp_path: Path) -> None:
    s = build(tmp_path, HOURLY, {**HOURLY, "cron": "@daily"})
    assert [j.cron.expr for j in s.jobs] == ["0 * * * *"]
    assert "defined twice" in next(iter(s.disabled.values()))


def test_disabled_entries_are_simply_off(tmp_path: Path) -> None:
    s = build(tmp_path, {**HOURLY, "enabled": False})
    assert s.jobs == [] and s.disabled == {}
