"""Kaylee's cron parser and searches, against dates checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kaylee._cron import CronError, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int, tz: object = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[arg-type, misc]


def when(epoch: float, tz: object = UTC) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M %a")  # type: ignore[arg-type]


@pytest.mark.parametrize(("expr", "start", "expected"), [
    ("*/5 * * * *", (2026, 11, 21, 9, 7), "2026-11-21 09:10 Sat"),
    ("*/5 * * * *", (2026, 11, 21, 9, 10), "2026-11-21 09:15 Sat"),  # strictly after
    ("0 7 * * *", (2026, 11, 21, 7, 0), "2026-11-22 07:00 Sun"),
    ("30 2 1 * *", (2026, 11, 21, 0, 0), "2026-12-01 02:30 Tue"),
    ("0 9 * * mon-fri", (2026, 11, 21, 12, 0), "2026-11-23 09:00 Mon"),  # Saturday → Monday
    ("0 9 * * 7", (2026, 11, 21, 12, 0), "2026-11-22 09:00 Sun"),  # 7 is Sunday
    ("15 10 * feb *", (2026, 11, 21, 0, 0), "2027-02-01 10:15 Mon"),
    ("0 0 29 2 *", (2026, 11, 21, 0, 0), "2028-02-29 00:00 Tue"),  # the next leap day
    ("0 12 13 * fri", (2026, 11, 21, 0, 0), "2026-11-27 12:00 Fri"),  # day OR weekday (Vixie)
    ("0 0 1,15 * *", (2026, 11, 21, 0, 0), "2026-12-01 00:00 Tue"),
    ("5-10/5 8 * * *", (2026, 11, 21, 8, 6), "2026-11-21 08:10 Sat"),
    ("0 */6 * * *", (2026, 11, 21, 13, 0), "2026-11-21 18:00 Sat"),
    ("@daily", (2026, 11, 21, 13, 0), "2026-11-22 00:00 Sun"),
    ("@weekly", (2026, 11, 21, 13, 0), "2026-11-22 00:00 Sun"),
    ("@hourly", (2026, 11, 21, 13, 59), "2026-11-21 14:00 Sat"),
    ("@yearly", (2026, 11, 21, 13, 0), "2027-01-01 00:00 Fri"),
    ("0 0 * * */2", (2026, 11, 21, 13, 0), "2026-11-22 00:00 Sun"),  # */2 counts as star
])
def test_next_after(expr: str, start: tuple[int, ...], expected: str) -> None:
    assert when(parse_cron(expr).next_after(ts(*start))) == expected


def test_last_at_or_before_includes_the_instant_itself() -> None:
    cron = parse_cron("*/15 * * * *")
    assert when(cron.last_at_or_before(ts(2026, 11, 21, 9, 30)) or 0) == "2026-11-21 09:30 Sat"
    assert when(cron.last_at_or_before(ts(2026, 11, 21, 9, 29)) or 0) == "2026-11-21 09:15 Sat"
    monthly = parse_cron("0 3 1 * *")
    assert when(monthly.last_at_or_before(ts(2026, 11, 21, 0, 0)) or 0) == "2026-11-01 03:00 Sun"


def test_count_between_counts_slots_and_stops_at_the_limit() -> None:
    cron = parse_cron("*/5 * * * *")
    assert cron.count_between(ts(2026, 11, 21, 9, 0), ts(2026, 11, 21, 10, 0)) == 12
    assert cron.count_between(ts(2026, 11, 21, 9, 0), ts(2026, 11, 22, 9, 0), limit=50) == 50


def test_time_zone_slots_are_wall_clock_times() -> None:
    cron = parse_cron("0 7 * * *")
    nxt = cron.next_after(ts(2026, 11, 21, 12, 0), BERLIN)
    assert datetime.fromtimestamp(nxt, UTC).strftime("%H:%M") == "06:00"  # CET is UTC+1
    assert when(nxt, BERLIN) == "2026-11-22 07:00 Sun"


def test_a_slot_in_the_spring_gap_does_not_exist() -> None:
    # 2026-03-29 02:00 → 03:00 in Berlin: 02:30 does not happen that day.
    cron = parse_cron("30 2 * * *")
    nxt = cron.next_after(ts(2026, 3, 28, 12, 0, tz=BERLIN), BERLIN)
    assert when(nxt, BERLIN) == "2026-03-30 02:30 Mon"


def test_a_slot_in_the_repeated_autumn_hour_runs_once() -> None:
    # 2026-10-25 03:00 → 02:00 in Berlin: 02:30 happens twice; the first one counts.
    cron = parse_cron("30 2 * * *")
    first = cron.next_after(ts(2026, 10, 25, 0, 0, tz=BERLIN), BERLIN)
    assert datetime.fromtimestamp(first, BERLIN).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    second = cron.next_after(first, BERLIN)
    assert when(second, BERLIN) == "2026-10-26 02:30 Mon"
    assert second - first == 25 * 3600


@pytest.mark.parametrize(("expr", "message"), [
    ("61 * * * *", "minute 61 is out of range 0-59"),
    ("* 24 * * *", "hour 24 is out of range 0-23"),
    ("* * 0 * *", "day of month 0 is out of range 1-31"),
    ("* * * 13 *", "month 13 is out of range 1-12"),
    ("* * * * 8", "day of week 8 is out of range 0-7"),
    ("* * * * funday", "'funday' is not a number or a name"),
    ("*/0 * * * *", "step '0'"),
    ("10-5 * * * *", "runs backwards"),
    ("* * * *", "expected 5 fields"),
    ("1,,2 * * * *", "empty item"),
    ("@reboot", "unknown macro"),
    ("0 0 31 2 *", "no month in it has such a day"),
    ("; rm -rf /", "expected 5 fields"),
])
def test_bad_expressions_are_refused_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("*", r"\*").replace("(", r"\(")):
        parse_cron(expr)


def test_not_text_is_refused() -> None:
    with pytest.raises(CronError, match="must be text"):
        parse_cron(5)  # type: ignore[arg-type]
