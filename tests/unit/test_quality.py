"""The batch's quality checks as pure functions: the profile of a run's records, drift
against the last run under each policy, and volume against the recent days' median."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pytest

from ey_platform.ops.quality import (
    Shape,
    merge,
    profile_lines,
    schema_check,
    volume_check,
)

USER = {
    "id": 1,
    "name": {"firstname": "a", "lastname": "b"},
    "address": {"number": 7, "geolocation": {"lat": "1.5"}},
    "tags": [{"k": 1}],
    "__v": 0,
}


def lines(*records: object) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_the_profile_counts_every_path_with_its_json_types() -> None:
    shape = profile_lines(lines(USER, {**USER, "id": 2.5, "__v": None}))
    assert shape.records == 2
    assert shape.as_json()["fields"] == {
        "__v": {"null": 1, "number": 1},
        "address": {"object": 2},
        "address.geolocation": {"object": 2},
        "address.geolocation.lat": {"string": 2},
        "address.number": {"number": 2},
        "id": {"number": 2},
        "name": {"object": 2},
        "name.firstname": {"string": 2},
        "name.lastname": {"string": 2},
        "tags": {"array": 2},
        "tags[]": {"object": 2},
        "tags[].k": {"number": 2},
    }
    assert Shape.from_json(orjson.loads(orjson.dumps(shape.as_json()))) == shape
    assert Shape.from_json({"id": ["number"]}) is None  # not a shape: no baseline


def test_a_large_batch_is_profiled_from_a_spread_sample() -> None:
    records: list[dict[str, object]] = [{"id": i} for i in range(10_000)]
    records[-1] = {"id": 9_999, "late": True}  # the last line is in the sample
    shape = profile_lines(lines(*records), sample=100)
    assert shape.records == 101 and "late" in shape.fields
    records[-2] = {"id": 9_998, "rare": True}  # one record in 10,000, not sampled
    assert "rare" not in profile_lines(lines(*records), sample=100).fields


def test_drift_names_added_removed_and_retyped_fields() -> None:
    before = profile_lines(lines(USER))
    drifted = {**USER, "promo": "x", "address": {"number": "7", "geolocation": {"lat": "1"}}}
    del drifted["__v"]
    check = schema_check(before, profile_lines(lines(drifted)), "warn")
    assert check.status == "warn"
    assert "added: promo" in check.observed
    assert "removed: __v" in check.observed
    assert "retyped: address.number number -> string" in check.observed


@pytest.mark.parametrize(
    ("policy", "status"), [("evolve", "pass"), ("warn", "warn"), ("freeze", "fail")]
)
def test_each_policy_grades_a_drift(policy: str, status: str) -> None:
    before = profile_lines(lines(USER))
    check = schema_check(before, profile_lines(lines({**USER, "new": 1})), policy)  # type: ignore[arg-type]
    assert check.status == status
    assert "added: new" in check.observed  # recorded under every policy


def test_a_field_that_is_sometimes_null_or_whole_is_not_drift() -> None:
    before = profile_lines(lines({"id": 1, "price": 2.5, "note": "x"}))
    now = profile_lines(lines({"id": 2, "price": 3, "note": None}))
    assert schema_check(before, now, "freeze").status == "pass"
    assert schema_check(None, now, "freeze").status == "pass"  # no earlier run


def test_a_field_rarer_than_one_record_in_a_hundred_is_not_judged() -> None:
    # A coupon on 1 record in 200 comes and goes with the sample: no drift either way.
    common = [{"id": i} for i in range(199)]
    with_coupon = profile_lines(lines(*common, {"id": 199, "coupon": "X"}))
    without = profile_lines(lines(*common, {"id": 199}))
    assert schema_check(with_coupon, without, "freeze").status == "pass"
    assert schema_check(without, with_coupon, "freeze").status == "pass"
    # On 1 record in 50 it is a field of the entity: its loss is drift.
    five = profile_lines(lines(*common[:49], {"id": 49, "coupon": "X"}))
    assert (
        "removed: coupon" in schema_check(five, profile_lines(lines(*common[:50])), "warn").observed
    )
    # And a type that 1 value in 200 has is not the field's type.
    odd = profile_lines(lines(*({"id": i, "n": 1} for i in range(199)), {"id": 199, "n": "1"}))
    assert schema_check(profile_lines(lines({"id": 1, "n": 1})), odd, "freeze").status == "pass"


def test_merged_shapes_add_their_counts() -> None:
    merged = merge([profile_lines(lines({"a": 1})), profile_lines(lines({"a": "x", "b": []}))])
    assert merged.records == 2
    assert merged.as_json()["fields"] == {"a": {"number": 1, "string": 1}, "b": {"array": 1}}


def days(*counts: int) -> list[tuple[date, int]]:
    return [(date(2026, 11, 30) - timedelta(days=i), n) for i, n in enumerate(counts)]


def test_volume_is_judged_against_the_median_of_the_recent_days() -> None:
    # One odd day (a partial load a week ago, a spike yesterday) does not move the median.
    recent = days(1_000, 10, 98, 101, 99, 100, 102)
    assert volume_check("users", 60, recent, 0.5).status == "pass"
    failed = volume_check("users", 40, recent, 0.5)
    assert failed.status == "fail"
    assert failed.expected == ">= 50% of 100, the median of the last 7 loaded days"
    assert failed.detail is not None and "2026-11-30: 1,000" in failed.detail


def test_no_records_always_fail_and_a_first_day_passes() -> None:
    assert volume_check("products", 0, [], 0.5).status == "fail"
    assert volume_check("products", 0, days(20), 0.0).status == "fail"
    assert volume_check("products", 5, [], 0.5).status == "pass"
