"""A policy's rules: its schedule (an RRULE subset) and its retention, checked and applied
without the database.

A policy's trigger is a list of 1-24 patterns of the reference's RRULE subset (UTC):
`FREQ=DAILY|WEEKLY`, `BYDAY=MO,..,SU`, `BYHOUR=0..23[,..]`, `BYMINUTE=0..59[,..]` (default 0),
`INTERVAL=1..365` (default 1, counted from the policy's creation day/week, RFC 5545's DTSTART).
`FREQ=WEEKLY` needs `BYDAY`. All patterns together must keep every two runs at least one hour
apart (hence at most 24 runs a day). That check is conservative: it assumes every pattern may
run on every weekday its `BYDAY` allows, whatever its `INTERVAL`. Identical times in two
patterns are one run.

Retention (`operation_definition`), applied per protected resource to the vault's automatic
backups (`auto_trigger`), see `backups_to_drop`:
- `max_backups` keeps the newest N; `retention_duration_days` keeps those made in the last N
  days; -1 or absent = not by this rule; one of the two at most; neither = keep forever.
- `day_backups`, `week_backups`, `month_backups`, `year_backups` (0-100, need `timezone` like
  `UTC+08:00`) additionally keep the newest backup of each of the N most recent days (weeks,
  months, years) that have a backup, in that timezone (restic's `--keep-daily` rule); these are
  kept whatever `max_backups` says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from opencbr.core.errors import ValidationFailed
from opencbr.core.numbers import whole_number

__all__ = [
    "MAX_PATTERNS",
    "Retention",
    "Rule",
    "backups_to_drop",
    "check_definition",
    "parse_offset",
    "parse_rule",
    "parse_schedule",
    "retention_of",
]

MAX_PATTERNS = 24
MIN_GAP_MINUTES = 60
MAX_INTERVAL = 365
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_MINUTES = 24 * 60
_OFFSET = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")
LONG_TERM = ("day_backups", "week_backups", "month_backups", "year_backups")


# --- the trigger: an RRULE subset --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One parsed pattern: on which days (UTC) it runs, and at which minutes of those days."""

    freq: str
    interval: int
    weekdays: frozenset[int]  # 0 = Monday
    times: tuple[int, ...]  # minutes after midnight UTC, ascending

    def runs_on(self, day: datetime, anchor: datetime) -> bool:
        """Whether the rule runs on `day` (a midnight), counting INTERVAL from `anchor`."""
        if day.weekday() not in self.weekdays:
            return False
        start = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.freq == "DAILY":
            return (day - start).days % self.interval == 0
        weeks = ((day - timedelta(days=day.weekday())) - (start - timedelta(start.weekday()))).days
        return (weeks // 7) % self.interval == 0


def _bad(pattern: str, reason: str) -> ValidationFailed:
    return ValidationFailed(reason=f"trigger pattern {pattern!r}: {reason}")


def _numbers(pattern: str, key: str, value: str, low: int, high: int) -> list[int]:
    found = []
    for part in value.split(","):
        number = whole_number(part.strip())
        if number is None or not low <= number <= high:
            raise _bad(pattern, f"{key} values must be integers {low}-{high}")
        found.append(number)
    return found


def _fields(pattern: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in pattern.strip().split(";"):
        key, sep, value = part.partition("=")
        key, value = key.strip().upper(), value.strip().upper()
        if not sep or not value:
            raise _bad(pattern, f"{part!r} is not KEY=VALUE")
        if key not in ("FREQ", "BYDAY", "BYHOUR", "BYMINUTE", "INTERVAL"):
            raise _bad(pattern, f"{key} is not supported (FREQ, BYDAY, BYHOUR, BYMINUTE, INTERVAL)")
        if key in fields:
            raise _bad(pattern, f"{key} is given twice")
        fields[key] = value
    return fields


def parse_rule(pattern: str) -> Rule:
    """Parse one pattern, or raise ValidationFailed (BackupService.9900) naming the fault."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise _bad(str(pattern), "empty pattern")
    fields = _fields(pattern)
    freq = fields.get("FREQ")
    if freq not in ("DAILY", "WEEKLY"):
        raise _bad(pattern, "FREQ must be DAILY or WEEKLY")
    if "BYHOUR" not in fields:
        raise _bad(pattern, "BYHOUR is required")
    weekdays = frozenset(range(7))
    if "BYDAY" in fields:
        days = [d.strip() for d in fields["BYDAY"].split(",")]
        if any(d not in WEEKDAYS for d in days):
            raise _bad(pattern, "BYDAY values must be MO, TU, WE, TH, FR, SA or SU")
        weekdays = frozenset(WEEKDAYS.index(d) for d in days)
    elif freq == "WEEKLY":
        raise _bad(pattern, "FREQ=WEEKLY needs BYDAY")
    hours = _numbers(pattern, "BYHOUR", fields["BYHOUR"], 0, 23)
    minutes = _numbers(pattern, "BYMINUTE", fields.get("BYMINUTE", "0"), 0, 59)
    interval = _numbers(pattern, "INTERVAL", fields.get("INTERVAL", "1"), 1, MAX_INTERVAL)
    if len(interval) != 1:
        raise _bad(pattern, "INTERVAL takes one value")
    times = tuple(sorted({h * 60 + m for h in hours for m in minutes}))
    return Rule(freq, interval[0], weekdays, times)


def parse_schedule(patterns: Sequence[str]) -> tuple[Rule, ...]:
    """Parse and check a whole trigger: 1-24 patterns, runs at least one hour apart."""
    if not 1 <= len(patterns) <= MAX_PATTERNS:
        raise ValidationFailed(reason=f"trigger pattern must list 1-{MAX_PATTERNS} rules")
    rules = tuple(parse_rule(p) for p in patterns)
    week = sorted(
        {day * DAY_MINUTES + t for rule in rules for day in rule.weekdays for t in rule.times}
    )
    gaps = [b - a for a, b in pairwise(week)]
    if len(week) > 1:
        gaps.append(week[0] + 7 * DAY_MINUTES - week[-1])  # Sunday night to Monday morning
    if any(gap < MIN_GAP_MINUTES for gap in gaps):
        raise ValidationFailed(
            reason="trigger pattern: runs must be at least one hour apart (at most 24 a day)"
        )
    return rules


# --- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    max_backups: int = -1
    retention_days: int = -1
    long_term: tuple[int, int, int, int] = (0, 0, 0, 0)  # day, week, month, year
    offset: timedelta = timedelta(0)

    @property
    def limited(self) -> bool:
        """False when the rules keep every backup (neither count nor age limit)."""
        return self.max_backups > 0 or self.retention_days > 0


def parse_offset(value: str) -> timedelta:
    match = _OFFSET.match(value.strip().upper())
    if not match or int(match[2]) > 14 or int(match[3]) > 59:
        raise ValidationFailed(reason=f"timezone {value!r} must look like UTC+08:00")
    delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
    return -delta if match[1] == "-" else delta


def _int_field(definition: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = definition.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(reason=f"operation_definition.{key} must be {low}..{high}")
    return value


def check_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `operation_definition`; the normalised dict that is stored and shown."""
    if definition.get("advanced_retention_rules"):
        raise ValidationFailed(reason="advanced_retention_rules are not supported")
    out: dict[str, Any] = {}
    for key, low in (("max_backups", 1), ("retention_duration_days", 1)):
        value = _int_field(definition, key, -1, 99999)
        if value is not None and value != -1 and value < low:
            raise ValidationFailed(reason=f"operation_definition.{key} must be -1 or 1..99999")
        if value is not None:
            out[key] = value
    if out.get("max_backups", -1) > 0 and out.get("retention_duration_days", -1) > 0:
        raise ValidationFailed(
            reason="set max_backups or retention_duration_days, not both (the other to -1)"
        )
    for key in LONG_TERM:
        value = _int_field(definition, key, 0, 100)
        if value is not None:
            out[key] = value
    timezone = definition.get("timezone")
    if timezone is not None:
        parse_offset(str(timezone))
        out["timezone"] = str(timezone).strip().upper()
    if any(out.get(k) for k in LONG_TERM) and "timezone" not in out:
        raise ValidationFailed(reason="day/week/month/year_backups need a timezone like UTC+08:00")
    interval = _int_field(definition, "full_backup_interval", -1, 100)
    if interval is not None:
        out["full_backup_interval"] = interval
    return out


def retention_of(definition: Mapping[str, Any]) -> Retention:
    return Retention(
        max_backups=int(definition.get("max_backups", -1)),
        retention_days=int(definition.get("retention_duration_days", -1)),
        long_term=(
            int(definition.get("day_backups", 0)),
            int(definition.get("week_backups", 0)),
            int(definition.get("month_backups", 0)),
            int(definition.get("year_backups", 0)),
        ),
        offset=parse_offset(definition["timezone"]) if definition.get("timezone") else timedelta(0),
    )


def _bucket(unit: int, local: datetime) -> tuple[int, ...]:
    if unit == 0:
        return (local.year, local.month, local.day)
    if unit == 1:
        iso = local.isocalendar()
        return (iso.year, iso.week)
    if unit == 2:
        return (local.year, local.month)
    return (local.year,)


def backups_to_drop(
    backups: Iterable[tuple[str, datetime]], retention: Retention, now: datetime
) -> set[str]:
    """Which of one resource's automatic backups (id, created_at UTC) the rules no longer keep."""
    ordered = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    if not retention.limited:
        return set()
    keep: set[str] = set()
    if retention.max_backups > 0:
        keep.update(b[0] for b in ordered[: retention.max_backups])
    if retention.retention_days > 0:
        oldest = now - timedelta(days=retention.retention_days)
        keep.update(b[0] for b in ordered if b[1] >= oldest)
    for unit, count in enumerate(retention.long_term):
        seen: set[tuple[int, ...]] = set()
        for backup_id, created in ordered:
            key = _bucket(unit, created + retention.offset)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.add(key)
            keep.add(backup_id)
    return {b[0] for b in ordered} - keep
