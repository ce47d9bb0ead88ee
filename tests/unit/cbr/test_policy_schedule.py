"""Policy triggers: the RRULE subset, its limits, and which periods are due when."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from opencbr.cbr.policies import parse_rule, parse_schedule
from opencbr.cbr.scheduler import autobind_period, due_periods, period_to_fire
from opencbr.core.errors import ValidationFailed

DAILY_14 = "FREQ=DAILY;INTERVAL=1;BYHOUR=14;BYMINUTE=00"
EVERY_DAY_14 = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=14;BYMINUTE=00"
MONDAY = datetime(2026, 1, 5)  # a Monday
HOUR = timedelta(hours=1)


def test_the_reference_examples_parse() -> None:
    weekly = parse_rule(EVERY_DAY_14)
    assert weekly.freq == "WEEKLY"
    assert weekly.weekdays == frozenset(range(7))
    assert weekly.times == (14 * 60,)
    daily = parse_rule("FREQ=DAILY;INTERVAL=1;BYHOUR=6;BYMINUTE=00")
    assert (daily.freq, daily.interval, daily.times) == ("DAILY", 1, (360,))


def test_lists_of_hours_and_minutes_and_defaults() -> None:
    rule = parse_rule("freq=daily;byhour=0,6,12,18")
    assert rule.times == (0, 360, 720, 1080)
    assert rule.interval == 1
    assert parse_rule("FREQ=WEEKLY;BYDAY=SA;BYHOUR=3;BYMINUTE=30").weekdays == frozenset({5})


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("FREQ=MONTHLY;BYHOUR=1", "FREQ must be DAILY or WEEKLY"),
        ("FREQ=HOURLY;BYHOUR=1", "FREQ must be DAILY or WEEKLY"),
        ("BYHOUR=1", "FREQ must be DAILY or WEEKLY"),
        ("FREQ=DAILY", "BYHOUR is required"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR values must be integers 0-23"),
        ("FREQ=DAILY;BYHOUR=-1", "BYHOUR values must be integers 0-23"),
        ("FREQ=DAILY;BYHOUR=1;BYMINUTE=60", "BYMINUTE values must be integers 0-59"),
        ("FREQ=DAILY;BYHOUR=1;BYMINUTE=x", "BYMINUTE values"),
        ("FREQ=WEEKLY;BYHOUR=1", "FREQ=WEEKLY needs BYDAY"),
        ("FREQ=WEEKLY;BYDAY=XX;BYHOUR=1", "BYDAY values"),
        ("FREQ=DAILY;BYHOUR=1;INTERVAL=0", "INTERVAL values"),
        ("FREQ=DAILY;BYHOUR=1;INTERVAL=1,2", "INTERVAL takes one value"),
        ("FREQ=DAILY;BYHOUR=1;COUNT=3", "COUNT is not supported"),
        ("FREQ=DAILY;BYHOUR=1;BYHOUR=2", "BYHOUR is given twice"),
        ("FREQ=DAILY;BYHOUR", "is not KEY=VALUE"),
    ],
)
def test_bad_patterns_are_9900(pattern: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_schedule([pattern])
    assert caught.value.code == "BackupService.9900"
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_runs_must_be_an_hour_apart() -> None:
    parse_schedule(["FREQ=DAILY;BYHOUR=" + ",".join(str(h) for h in range(24))])  # 24 a day
    with pytest.raises(ValidationFailed, match="one hour apart"):
        parse_schedule(["FREQ=DAILY;BYHOUR=1;BYMINUTE=0,30"])
    with pytest.raises(ValidationFailed, match="one hour apart"):
        parse_schedule(["FREQ=DAILY;BYHOUR=1", "FREQ=WEEKLY;BYDAY=TU;BYHOUR=1;BYMINUTE=59"])
    # across midnight: Monday 23:30 and Tuesday 00:00
    with pytest.raises(ValidationFailed, match="one hour apart"):
        parse_schedule(["FREQ=WEEKLY;BYDAY=MO;BYHOUR=23;BYMINUTE=30", "FREQ=DAILY;BYHOUR=0"])
    # across the week's end: Sunday 23:30 and Monday 00:10
    with pytest.raises(ValidationFailed, match="one hour apart"):
        parse_schedule(
            [
                "FREQ=WEEKLY;BYDAY=SU;BYHOUR=23;BYMINUTE=30",
                "FREQ=WEEKLY;BYDAY=MO;BYHOUR=0;BYMINUTE=10",
            ]
        )
    # the same time twice is one run
    parse_schedule([DAILY_14, EVERY_DAY_14])


def test_at_most_24_patterns() -> None:
    patterns = [f"FREQ=DAILY;BYHOUR={h}" for h in range(24)]
    assert len(parse_schedule(patterns)) == 24
    with pytest.raises(ValidationFailed, match="1-24"):
        parse_schedule([*patterns, "FREQ=WEEKLY;BYDAY=MO;BYHOUR=5"])
    with pytest.raises(ValidationFailed, match="1-24"):
        parse_schedule([])


def test_due_periods_lists_run_times_in_the_range() -> None:
    rules = parse_schedule(["FREQ=DAILY;BYHOUR=2,14"])
    found = due_periods(rules, MONDAY, MONDAY, MONDAY + timedelta(days=2))
    assert found == [MONDAY + timedelta(days=d, hours=h) for d in (0, 1) for h in (2, 14)]
    # `after` is exclusive, `now` inclusive
    at_two = MONDAY + timedelta(hours=2)
    assert due_periods(rules, MONDAY, at_two, at_two + timedelta(hours=12)) == [
        MONDAY + timedelta(hours=14)
    ]
    assert due_periods(rules, MONDAY, MONDAY, at_two) == [at_two]


def test_nothing_before_the_policy_was_created() -> None:
    rules = parse_schedule([DAILY_14])
    created = MONDAY + timedelta(hours=14, seconds=5)
    assert due_periods(rules, created, MONDAY, MONDAY + timedelta(hours=20)) == []
    assert due_periods(rules, created, MONDAY, MONDAY + timedelta(days=1, hours=14)) == [
        MONDAY + timedelta(days=1, hours=14)
    ]


def test_weekly_runs_only_on_its_days() -> None:
    rules = parse_schedule(["FREQ=WEEKLY;BYDAY=WE,SU;BYHOUR=9"])
    found = due_periods(rules, MONDAY, MONDAY, MONDAY + timedelta(days=14))
    assert [t.strftime("%a %d %H") for t in found] == [
        "Wed 07 09",
        "Sun 11 09",
        "Wed 14 09",
        "Sun 18 09",
    ]


def test_interval_counts_from_the_start() -> None:
    every_third_day = parse_schedule(["FREQ=DAILY;INTERVAL=3;BYHOUR=1"])
    found = due_periods(every_third_day, MONDAY, MONDAY, MONDAY + timedelta(days=10))
    assert [(t - MONDAY).days for t in found] == [0, 3, 6, 9]
    # a start mid-week counts weeks from its own week: every other week, on Mondays
    fortnightly = parse_schedule(["FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=1"])
    wednesday = MONDAY + timedelta(days=2)
    found = due_periods(fortnightly, wednesday, wednesday, MONDAY + timedelta(days=36))
    assert [(t - MONDAY).days for t in found] == [14, 28]


def test_period_to_fire_takes_the_latest_unfired_run_in_the_window() -> None:
    rules = parse_schedule(["FREQ=DAILY;BYHOUR=" + ",".join(str(h) for h in range(24))])
    now = MONDAY + timedelta(days=3, hours=10, minutes=20)
    period = MONDAY + timedelta(days=3, hours=10)
    assert period_to_fire(rules, MONDAY, None, now, HOUR) == period
    assert period_to_fire(rules, MONDAY, MONDAY + timedelta(days=1), now, HOUR) == period
    assert period_to_fire(rules, MONDAY, period, now, HOUR) is None  # fired already


def test_a_run_missed_by_more_than_the_window_is_skipped() -> None:
    rules = parse_schedule([DAILY_14])
    late = MONDAY + timedelta(days=1, hours=15, minutes=1)
    assert period_to_fire(rules, MONDAY, None, late, HOUR) is None
    assert period_to_fire(rules, MONDAY, None, late, 2 * HOUR) == MONDAY + timedelta(
        days=1, hours=14
    )


def test_the_default_auto_bind_period_is_daily_at_midnight() -> None:
    assert autobind_period(MONDAY + timedelta(minutes=59)) == MONDAY
    assert autobind_period(MONDAY) == MONDAY
    assert autobind_period(MONDAY + timedelta(hours=1)) is None
    assert autobind_period(MONDAY + timedelta(hours=13)) is None


@pytest.mark.parametrize("hour", ["²", "٣", "\uff17"])
def test_unicode_digits_in_a_trigger_are_refused(hour: str) -> None:
    with pytest.raises(ValidationFailed, match="BYHOUR values must be integers"):
        parse_rule(f"FREQ=DAILY;INTERVAL=1;BYHOUR={hour};BYMINUTE=00")
