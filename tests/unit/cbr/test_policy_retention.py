"""Policy retention: definition checks and which backups the rules drop."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from opencbr.cbr.autobind import matches_bind_rules
from opencbr.cbr.policies import (
    Retention,
    backups_to_drop,
    check_definition,
    parse_offset,
    retention_of,
)
from opencbr.core.errors import ValidationFailed

NOW = datetime(2026, 3, 15, 12, 0)


def daily(count: int, hour: int = 2) -> list[tuple[str, datetime]]:
    """One backup a day for `count` days up to NOW, ids b0 (newest) .. b{count-1}."""
    start = NOW.replace(hour=hour)
    return [(f"b{i}", start - timedelta(days=i)) for i in range(count)]


def test_no_limits_keep_everything() -> None:
    assert backups_to_drop(daily(50), Retention(), NOW) == set()
    # long-term rules alone do not limit anything: without a count or age limit, keep all
    assert backups_to_drop(daily(50), Retention(long_term=(1, 1, 1, 1)), NOW) == set()


def test_max_backups_keeps_the_newest() -> None:
    dropped = backups_to_drop(daily(5), Retention(max_backups=3), NOW)
    assert dropped == {"b3", "b4"}


def test_retention_days_keeps_the_recent_ones() -> None:
    backups = daily(10)
    dropped = backups_to_drop(backups, Retention(retention_days=7), NOW)
    # b0..b6 are within 7 days of NOW (NOW - 7 d = Mar 8 12:00; b7 is Mar 8 02:00)
    assert dropped == {"b7", "b8", "b9"}


def test_daily_rule_keeps_the_newest_of_each_recent_day() -> None:
    twice_a_day = [(f"a{i}", NOW.replace(hour=1) - timedelta(days=i)) for i in range(6)] + [
        (f"p{i}", NOW.replace(hour=11) - timedelta(days=i)) for i in range(6)
    ]
    dropped = backups_to_drop(twice_a_day, Retention(max_backups=1, long_term=(3, 0, 0, 0)), NOW)
    kept = {b for b, _ in twice_a_day} - dropped
    assert kept == {"p0", "p1", "p2"}


def test_weekly_monthly_yearly_rules() -> None:
    backups = daily(800)
    retention = Retention(max_backups=2, long_term=(0, 4, 3, 2))
    kept = {b for b, _ in backups} - backups_to_drop(backups, retention, NOW)
    when = dict(backups)
    newest = {"b0", "b1"}
    # the newest of each of the 4 newest ISO weeks (Sundays, as NOW is a Sunday), of the 3
    # newest months (15 Mar, 28 Feb, 31 Jan) and of the 2 newest years (15 Mar 2026, 31 Dec 2025)
    weeks = {"b0", "b7", "b14", "b21"}
    months = {"b0", "b15", "b43"}
    years = {"b0", "b74"}
    assert kept == newest | weeks | months | years
    assert when["b74"] == datetime(2025, 12, 31, 2, 0)
    assert when["b43"] == datetime(2026, 1, 31, 2, 0)


def test_the_timezone_moves_day_boundaries() -> None:
    # 23:30 UTC on the 14th is already the 15th in UTC+08:00, so it shares a day with 09:00
    late = ("late", datetime(2026, 3, 14, 23, 30))
    morning = ("morning", datetime(2026, 3, 15, 9, 0))
    evening = ("evening", datetime(2026, 3, 14, 10, 0))
    backups = [late, morning, evening]
    utc = Retention(max_backups=1, long_term=(2, 0, 0, 0))
    assert backups_to_drop(backups, utc, NOW) == {"evening"}
    east = Retention(max_backups=1, long_term=(2, 0, 0, 0), offset=timedelta(hours=8))
    assert backups_to_drop(backups, east, NOW) == {"late"}


def test_check_definition_normalises_and_refuses() -> None:
    assert check_definition({"max_backups": 5}) == {"max_backups": 5}
    assert check_definition(
        {"retention_duration_days": 30, "day_backups": 7, "timezone": "utc+08:00"}
    ) == {"retention_duration_days": 30, "day_backups": 7, "timezone": "UTC+08:00"}
    assert check_definition({}) == {}
    bad: list[dict[str, Any]] = [
        {"max_backups": 0},
        {"max_backups": 100000},
        {"max_backups": "5"},
        {"retention_duration_days": -2},
        {"max_backups": 3, "retention_duration_days": 3},
        {"day_backups": 3},
        {"week_backups": 101, "timezone": "UTC+00:00"},
        {"timezone": "Europe/Paris"},
        {"full_backup_interval": 101},
        {"advanced_retention_rules": {"weekly_retention_rules": {}}},
    ]
    for definition in bad:
        with pytest.raises(ValidationFailed):
            check_definition(definition)


def test_offsets() -> None:
    assert parse_offset("UTC+08:00") == timedelta(hours=8)
    assert parse_offset("UTC-05:30") == -timedelta(hours=5, minutes=30)
    with pytest.raises(ValidationFailed):
        parse_offset("UTC+15:00")
    got = retention_of({"max_backups": 2, "week_backups": 1, "timezone": "UTC-01:00"})
    assert got == Retention(2, -1, (0, 1, 0, 0), -timedelta(hours=1))


def test_bind_rules_match_any_listed_tag() -> None:
    assert matches_bind_rules({"env": "prod"}, None)
    assert matches_bind_rules({}, {"tags": []})
    rules = {"tags": [{"key": "env", "value": "prod"}, {"key": "backup", "value": ""}]}
    assert matches_bind_rules({"env": "prod"}, rules)
    assert matches_bind_rules({"backup": "whatever"}, rules)
    assert not matches_bind_rules({"env": "dev"}, rules)
    assert not matches_bind_rules({}, rules)
