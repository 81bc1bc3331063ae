"""The one duration parser, and leaves whose -d is finer than a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certwiz import durations, issue
from certwiz.errors import InputError
from tests.conftest import load_cert, snapshot


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("365", timedelta(days=365)),
        (" 7d ", timedelta(days=7)),
        (1, timedelta(days=1)),
        ("36500d", timedelta(days=36500)),
        ("1m", timedelta(minutes=1)),
    ],
)
def test_accepted(text: str | int, span: timedelta) -> None:
    assert durations.parse(text, "grace") == span


@pytest.mark.parametrize(
    "text",
    ["", "0", "0d", "-1d", "1.5d", "1y", "1M", "12H", "d", "7 d", "1d2h", "36501d",
     "99999999", "1e3", "٣d", "P1D", "7d\n", "7d;rm", "nan", True],
)  # fmt: skip
def test_refused_naming_the_field(text: object) -> None:
    with pytest.raises(InputError) as caught:
        durations.parse(text, "warn")  # type: ignore[arg-type]
    assert caught.value.field == "warn"
    assert "30d, 12h, 90m or 2w" in caught.value.rule


def test_text_round_trips() -> None:
    for text in ("2w", "30d", "12h", "90m"):
        assert durations.text(durations.parse(text, "x")) == text


def test_stamp_round_trips_to_the_second() -> None:
    when = datetime(2026, 11, 29, 15, 28, 29, tzinfo=UTC)
    assert durations.stamp(when) == "2026-11-29T15:28:29Z"
    assert durations.from_stamp("2026-11-29T15:28:29Z") == when
    with pytest.raises(ValueError):
        durations.from_stamp("2026-11-29 15:28:29")


def test_whole_days_keep_classic_days_argument() -> None:
    assert durations.validity_args(timedelta(days=365)) == ["-days", "365"]
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert durations.validity_args(timedelta(hours=12), now) == ["-enddate", "20300102150405Z"]


def test_client_issue_for_twelve_hours(profile) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    done = issue.issue_client(profile, "bot-12h", days="12h")
    cert = load_cert(profile.cert_path("bot-12h"))
    lifetime = cert.not_valid_after_utc - before
    assert timedelta(hours=12) - timedelta(seconds=5) <= lifetime <= timedelta(hours=12, seconds=5)
    assert done.not_after == f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"


def test_plain_number_still_means_days(profile) -> None:
    issue.issue_server(profile, "api.example.com", days="365")
    cert = load_cert(profile.cert_path("api.example.com"))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365)


def test_bad_leaf_duration_changes_nothing(profile) -> None:
    before = snapshot(profile.dir)
    with pytest.raises(InputError) as caught:
        issue.issue_client(profile, "bot", days="12x")
    assert caught.value.field == "days"
    assert snapshot(profile.dir) == before
