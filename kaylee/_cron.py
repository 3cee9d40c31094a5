"""Cron expressions: the five fields of crontab(5), parsed and searched without a dependency.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n`` (``a/n`` means ``a-max/n``), or a list of
these separated by commas. Months and weekdays take names (``jan``, ``mon``);
Sunday is 0 or 7. ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``,
``@monthly`` and ``@yearly`` (``@annually``) stand for their usual lines.
As in Vixie cron, when both day fields are restricted a day matching either
counts (``0 9 1 * mon``: the first of the month and every Monday); a field that
starts with ``*`` is unrestricted.

Times are wall-clock times in a time zone (UTC unless the job names one). On
the day a clock change skips an hour, slots inside the gap do not exist and are
not run; in the hour that repeats, a slot runs once, at its first occurrence.

Why not a library: croniter (the usual choice) is a 2,000-line module with a
dateutil dependency and has been unmaintained for stretches; what Kaylee needs
is the two searches below, about 150 lines, tested against hand-checked dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from bridge import InvalidInput

__all__ = ["Cron", "CronError", "parse_cron"]

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

SEARCH_DAYS = 366 * 5
"""How far a search looks before it decides an expression never matches (Feb 29 on a
given weekday recurs within 28 years, but such a job is refused long before that)."""


class CronError(InvalidInput):
    """A cron expression that cannot be parsed, or that never matches."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS, 1),
    _Field("day of week", 0, 7, WEEKDAYS, 0),
)


def _value(text: str, spec: _Field, expr: str) -> int:
    low = text.lower()
    if low in spec.names:
        return spec.names.index(low) + spec.name_base
    if not text.isdigit():
        raise CronError(f"cron {expr!r}: {spec.name} {text!r} is not a number"
                        + (f" or a name ({', '.join(spec.names[:3])}...)" if spec.names else ""))
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise CronError(f"cron {expr!r}: {spec.name} {number} is out of range "
                        f"{spec.low}-{spec.high}")
    return number


def _parse_field(text: str, spec: _Field, expr: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"cron {expr!r}: empty item in the {spec.name} field")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"cron {expr!r}: step {step_text!r} in the {spec.name} field "
                                "must be a positive number")
            step = int(step_text)
        if body == "*":
            start, end = spec.low, spec.high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = _value(a, spec, expr), _value(b, spec, expr)
            if start > end:
                raise CronError(f"cron {expr!r}: range {body} in the {spec.name} field runs "
                                "backwards")
        else:
            start = _value(body, spec, expr)
            end = spec.high if slash else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; :meth:`next_after` and :meth:`last_at_or_before` search it."""

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field starts with *
    any_weekday: bool  # the day-of-week field starts with *

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def _slot(self, day: date, hour: int, minute: int, tz: tzinfo) -> float | None:
        """The epoch seconds of a wall-clock slot, or None if it does not exist in ``tz``."""
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        ts = local.timestamp()  # fold=0: the first occurrence of a repeated time
        if tz is not UTC:
            back = datetime.fromtimestamp(ts, tz)
            if (back.day, back.hour, back.minute) != (day.day, hour, minute):
                return None  # inside a gap: this wall-clock time does not exist that day
        return ts

    def next_after(self, when: float, tz: tzinfo = UTC) -> float:
        """The first slot strictly after ``when`` (epoch seconds)."""
        start = datetime.fromtimestamp(when, tz)
        day = start.date()
        for i in range(SEARCH_DAYS):
            if self.day_matches(day):
                for hour in self.hours:
                    if i == 0 and hour < start.hour:
                        continue
                    for minute in self.minutes:
                        ts = self._slot(day, hour, minute, tz)
                        if ts is not None and ts > when:
                            return ts
            day += timedelta(days=1)
        raise CronError(f"cron {self.expr!r} does not match any time in the next "
                        f"{SEARCH_DAYS // 366} years")

    def last_at_or_before(self, when: float, tz: tzinfo = UTC) -> float | None:
        """The latest slot at or before ``when``, or None within the search horizon."""
        start = datetime.fromtimestamp(when, tz)
        day = start.date()
        for i in range(SEARCH_DAYS):
            if self.day_matches(day):
                for hour in reversed(self.hours):
                    if i == 0 and hour > start.hour:
                        continue
                    for minute in reversed(self.minutes):
                        ts = self._slot(day, hour, minute, tz)
                        if ts is not None and ts <= when:
                            return ts
            day -= timedelta(days=1)
        return None

    def count_between(self, after: float, until: float, tz: tzinfo = UTC,
                      limit: int = 1000) -> int:
        """How many slots lie in ``(after, until]`` (counting stops at ``limit``)."""
        count = 0
        when = after
        while count < limit:
            when = self.next_after(when, tz)
            if when > until:
                break
            count += 1
        return count


def parse_cron(expr: str) -> Cron:
    """Parse a five-field expression or a macro. Raises CronError naming the problem."""
    if not isinstance(expr, str):
        raise CronError(f"cron expression must be text, not {expr!r}")
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"cron {expr!r}: unknown macro (known: {', '.join(MACROS)})")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"cron {expr!r}: expected 5 fields (minute hour day month weekday), "
                        f"got {len(parts)}")
    sets = [_parse_field(p, spec, expr) for p, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(expr, tuple(sorted(sets[0])), tuple(sorted(sets[1])), sets[2], sets[3],
                weekdays, parts[2].startswith("*"), parts[4].startswith("*"))
    if cron.any_weekday and not any(_day_exists(d, m) for m in cron.months for d in cron.days):
        raise CronError(f"cron {expr!r}: no month in it has such a day")
    return cron


def _day_exists(day: int, month: int) -> bool:
    return day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
