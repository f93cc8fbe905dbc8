"""Mapping and normalisation: what a source's ``mapping:`` does to a record, and the value
readers behind it, with properties checked over generated values where one holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagloop.dictionary import Dictionary
from tagloop.ingest.event import Event
from tagloop.runtime import Runtime
from tagloop.sources.base import Record
from tagloop.sources.coerce import CoerceError, to_bool, to_integer, to_number
from tagloop.sources.intake import Intake
from tagloop.sources.mapping import MappingError, RecordMapper
from tagloop.sources.times import to_date, to_time
from tagloop.sources.units import convert_unit
from tagloop.timeutil import to_us
from tagloop.workspace.models import EntityTypeSpec, RecordMapping
from tests.conftest import write_workspace

SHANGHAI = ZoneInfo("Asia/Shanghai")
DICTIONARY = Dictionary([EntityTypeSpec(name="customer"), EntityTypeSpec(name="device")])
FEEDBACK = {"rating": "rating", "text": "text", "channel": "channel"}


def mapper(source: str = "crm", **mapping: Any) -> RecordMapper:
    mapping.setdefault("entity_type", "customer")
    return RecordMapper(
        RecordMapping.model_validate(mapping),
        source=source,
        dictionary=DICTIONARY,
        timezone=SHANGHAI,
        typed_input=True,
    )


def event(m: RecordMapper, values: dict[str, Any], **meta: Any) -> Event:
    return m.to_event(values, key="k", received_at=0, meta=meta)


# -- numbers ---------------------------------------------------------------------------


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_thousands_separators_read_back_the_integer(n: int) -> None:
    assert to_number(f"{n:,}") == n
    assert to_integer(f"{n:,}") == n
    assert to_number(f"¥{n:,}" if n >= 0 else f"-¥{-n:,}") == n


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_grouped_decimals_are_the_same_number_as_plain_ones(value: Any) -> None:
    assert to_number(f"{value:,.2f}") == pytest.approx(float(value), abs=1e-9)


@given(st.from_regex(r"[0-9]{1,2},[0-9]{1,2}x?|[0-9]+,[0-9]{4,}", fullmatch=True))
def test_misplaced_separators_are_refused_never_guessed(text: str) -> None:
    with pytest.raises(CoerceError, match="is not a number"):
        to_number(text)


def test_number_forms_of_exports() -> None:
    assert [to_number(t) for t in ("3.5万", "12%", "(1,200)", "１２３，４５６", "2亿元")] == [
        35_000,
        0.12,
        -1200,
        123_456,
        200_000_000,
    ]


@given(st.sampled_from(["是", "yes", "TRUE", " 1 ", "on"]), st.sampled_from(["否", "No", "0"]))
def test_booleans_in_any_case_and_spacing(yes: str, no: str) -> None:
    assert to_bool(yes) is True and to_bool(no) is False


# -- times -----------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 12, 31))


@given(moments)
def test_chinese_dates_are_the_same_instant_as_iso(moment: datetime) -> None:
    moment = moment.replace(second=0, microsecond=0)
    written = f"{moment.year}年{moment.month}月{moment.day}日 {moment.hour}:{moment.minute:02d}"
    assert to_time(written, tz=SHANGHAI) == to_time(moment.isoformat(), tz=SHANGHAI)
    assert to_time(written, tz=SHANGHAI) == to_us(moment, SHANGHAI)
    slashed = f"{moment.year}/{moment.month}/{moment.day} {moment.hour}:{moment.minute:02d}"
    assert to_time(slashed, tz=SHANGHAI) == to_us(moment, SHANGHAI)


@given(moments)
def test_a_time_without_offset_is_in_the_zone_given(moment: datetime) -> None:
    text = moment.replace(microsecond=0).isoformat()
    # Shanghai has had no daylight saving time since 1991: always 8 hours ahead of UTC.
    if moment.year > 1991:
        hours = (to_time(text, tz=UTC) - to_time(text, tz=SHANGHAI)) / 3.6e9
        assert hours == 8
    # An explicit offset wins over the zone.
    assert to_time(text + "+00:00", tz=SHANGHAI) == to_time(text, tz=UTC)


@given(st.integers(min_value=100_000_000, max_value=95_000_000_000))
def test_epoch_seconds_and_milliseconds_agree_and_auto_tells_them_apart(seconds: int) -> None:
    expected = seconds * 1_000_000
    assert to_time(seconds, tz=UTC, epoch="s") == expected
    assert to_time(seconds * 1000, tz=UTC, epoch="ms") == expected
    assert to_time(str(seconds * 1000), tz=UTC, epoch="ms") == expected
    assert to_time(seconds, tz=UTC, epoch="auto") == expected
    assert to_time(seconds * 1000, tz=UTC, epoch="auto") == expected


def test_chinese_clock_words_and_dates() -> None:
    base = to_time("2024-03-05T00:00:00", tz=SHANGHAI)
    hour = 3_600_000_000
    assert to_time("2024年3月5日下午2点半", tz=SHANGHAI) == base + 14 * hour + hour // 2
    assert to_time("2024年3月5日上午12点", tz=SHANGHAI) == base
    assert to_date("2024年3月5日", tz=SHANGHAI) == "2024-03-05"
    with pytest.raises(CoerceError, match="is a number, not a time"):
        to_time("1709596800", tz=SHANGHAI)  # a price or an id must not become a time


# -- units -----------------------------------------------------------------------------


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_unit_conversions_go_there_and_back(value: float) -> None:
    assert convert_unit(convert_unit(value, "斤", "kg"), "kg", "斤") == pytest.approx(value)
    there = convert_unit(value, "摄氏度", "degF")
    assert convert_unit(there, "℉", "degC") == pytest.approx(value, abs=1e-6)


def test_unit_conversions_are_exact_where_people_check_them() -> None:
    assert convert_unit(100, "degC", "degF") == 212.0
    assert convert_unit(3, "斤", "公斤") == 1.5
    assert convert_unit(2, "度", "kJ") == 7200.0


# -- mapping ---------------------------------------------------------------------------


def test_an_error_names_source_record_and_field(tmp_path: Path) -> None:
    """The message an operator reads in the dead letters, as the issue spells it; the
    record's neighbours are not held back by it."""
    rt = Runtime.open(write_workspace(tmp_path / "ws", f"sqlite:///{tmp_path}/s.db"))
    m = mapper(type="order", entity_id="cust", fields={"amount": "number"})
    records = [
        Record({"cust": "C1", "amount": "12,3x"}, '{"amount": "12,3x"}', "record 1042", "1042"),
        Record({"cust": "C2", "amount": "1,000"}, "{}", "record 1043", "1043"),
    ]
    part, tally = Intake(rt, "crm", {"": m}).prepare(records)
    (letter,) = part.dead_letters
    assert letter["error"] == "source crm, record 1042, field amount: '12,3x' is not a number"
    assert letter["payload"] == '{"amount": "12,3x"}' and letter["record"]["cust"] == "C1"
    assert [e.properties for e in part.events] == [{"amount": 1000}]
    assert (tally.read, tally.rejected) == (2, 1)


def test_renames_types_units_constants_and_computed_fields() -> None:
    m = mapper(
        source="callcentre",
        type="feedback",
        entity_id="来电号码",
        time="日期",
        fields={
            "rating": {"from": "满意度", "type": "integer"},
            "refund": {"from": "退款金额", "type": "number"},
            "weight_kg": {"from": "重量", "type": "number", "unit": "斤", "to": "kg"},
        },
        constants={"channel": "call_centre"},
        computed={"big_refund": {"expr": "refund >= 1000", "type": "boolean"}},
        properties={
            "rating": "rating",
            "refund": "refund",
            "weight_kg": "weight_kg",
            "channel": "channel",
            "big_refund": "big_refund",
        },
    )
    found = event(
        m,
        {"来电号码": "13800000001", "日期": "2024年3月5日", "满意度": "4"}
        | {"退款金额": "1,200", "重量": "3"},
    )
    assert found.entity_id == "13800000001"
    assert found.time == to_time("2024-03-05", tz=SHANGHAI)
    assert found.properties == {
        "rating": 4,
        "refund": 1200,
        "weight_kg": 1.5,
        "channel": "call_centre",
        "big_refund": True,
    }


def test_several_channels_normalise_into_one_feedback_schema() -> None:
    web = mapper(
        source="web",
        type="feedback",
        entity_id="user.phone",
        time="submitted_at",
        epoch="ms",
        fields={"rating": {"from": "stars", "type": "integer"}, "text": {"from": "comment"}},
        constants={"channel": "web"},
        properties=FEEDBACK,
    )
    app = mapper(
        source="app",
        type="feedback",
        entity_id="phone",
        entity_id_pattern=r"^\+86(\d+)$",
        time="ts",
        fields={"rating": {"from": "score", "type": "integer"}, "text": {"from": "body"}},
        constants={"channel": "app"},
        properties=FEEDBACK,
    )
    web_record = {"user": {"phone": "13800000001"}, "stars": 5, "comment": "好"}
    from_web = event(web, web_record | {"submitted_at": 1709600000000})
    app_record = {"phone": "+8613800000001", "score": "5", "body": "好"}
    from_app = event(app, app_record | {"ts": "2024-03-05T08:53:20+08:00"})
    assert (from_web.type, from_web.entity_id, from_web.time) == (
        from_app.type,
        from_app.entity_id,
        from_app.time,
    )
    assert from_web.properties.keys() == from_app.properties.keys() == FEEDBACK.keys()
    assert from_web.properties["rating"] == from_app.properties["rating"] == 5
    with pytest.raises(MappingError, match="does not match"):
        event(app, {"phone": "13800000001", "score": 1, "body": "", "ts": "2024-03-05"})


def test_transport_metadata_and_defaults() -> None:
    m = mapper(
        type="vibration",
        entity_type="device",
        entity_id="meta.segments.device_id",
        fields={"line": {"from": "meta.topic", "type": "string"}, "unit": {"default": "mm/s"}},
        properties={"line": "line", "unit": "unit"},
    )
    found = event(m, {}, topic="factory/a/vibration", segments={"device_id": "D-7"})
    assert found.entity_id == "D-7"
    assert found.properties == {"line": "factory/a/vibration", "unit": "mm/s"}


@given(st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and s))
def test_the_same_record_is_always_the_same_event_id(key: str) -> None:
    m = mapper(type="order", entity_id="cust")
    first = m.to_event({"cust": "C1"}, key=key, received_at=0)
    again = m.to_event({"cust": "C1"}, key=key, received_at=timedelta(days=1).days)
    other = m.to_event({"cust": "C1"}, key=key + "x", received_at=0)
    assert first.id == again.id != other.id
