"""The gcp profile's failure modes: each is one clear error naming what to do, never a
traceback from deep inside a Google SDK. (No Google service is reached here.)"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.api_core.exceptions import Forbidden, InvalidArgument
from google.rpc.error_details_pb2 import ErrorInfo

from ey_platform.backends import make_bus, make_lake, make_warehouse
from ey_platform.bus.pubsub import PubSubBus, ack_failures
from ey_platform.errors import ConfigError, LakeError, WarehouseError
from ey_platform.gcp import api_errors
from ey_platform.settings import Settings, load_settings
from ey_platform.warehouse.bigquery.literals import sql_literal, sql_string


@pytest.mark.parametrize("make", [make_lake, make_warehouse, make_bus])
def test_the_project_is_required(make: Any) -> None:
    with pytest.raises(ConfigError, match="EYP_GCP__PROJECT: required with profile gcp"):
        make(Settings(profile="gcp"))


def test_a_missing_sdk_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    with pytest.raises(ConfigError, match=r"google\.cloud\.storage.*'ey-platform\[gcp\]'"):
        make_lake(Settings(profile="gcp", gcp={"project": "p"}))


def test_storage_read_without_its_package_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery_storage", None)
    settings = Settings(profile="gcp", gcp={"project": "p", "bigquery_storage_read": True})
    with pytest.raises(ConfigError, match="EYP_GCP__BIGQUERY_STORAGE_READ=true needs"):
        make_warehouse(settings)
    settings = Settings(
        profile="gcp", gcp={"project": "p"}, warehouse={"bigquery": {"storage_read": True}}
    )
    with pytest.raises(ConfigError, match="EYP_WAREHOUSE__BIGQUERY__STORAGE_READ=true needs"):
        make_warehouse(settings)


def test_missing_credentials_are_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key file that is not there fails at once (and conftest rules out a probe of the
    # metadata server).
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(ConfigError, match="no Google Cloud credentials for storage"):
        make_lake(load_settings(profile="gcp", gcp={"project": "p"}))


def test_api_errors_become_platform_errors_of_one_line() -> None:
    with pytest.raises(LakeError) as caught, api_errors(LakeError, "read gs://b/k"):
        raise Forbidden("caller lacks storage.objects.get\nmore detail")
    assert str(caught.value) == "read gs://b/k: caller lacks storage.objects.get"


def test_sql_literals_are_quoted_and_control_characters_refused() -> None:
    assert sql_string("it's a \\ path") == "'it\\'s a \\\\ path'"
    assert sql_literal(None) == "NULL" and sql_literal(True) == "TRUE" and sql_literal(7) == "7"
    assert sql_literal(date(2026, 11, 26)) == "DATE '2026-11-26'"
    assert sql_literal(datetime(2026, 11, 26, 2, tzinfo=UTC)) == (
        "TIMESTAMP '2026-11-26T02:00:00+00:00'"
    )
    with pytest.raises(WarehouseError, match="control character"):
        sql_string("run\n1")


def _refusal(**reasons: str) -> InvalidArgument:
    info = ErrorInfo(reason="EXACTLY_ONCE_ACKID_FAILURE", metadata=reasons)
    return InvalidArgument("some acks failed", error_info=info)


def test_ack_failures_reads_exactly_once_refusals_only() -> None:
    assert ack_failures(_refusal(a="PERMANENT_FAILURE_INVALID_ACK_ID")) == {
        "a": "PERMANENT_FAILURE_INVALID_ACK_ID"
    }
    other = InvalidArgument("bad", error_info=ErrorInfo(reason="OTHER", metadata={"k": "v"}))
    assert ack_failures(other) is None
    assert ack_failures(InvalidArgument("no details")) is None


class _RefusingSubscriber:
    """Stands in for the Pub/Sub service's exactly-once ack answers, which its emulator
    does not implement: refuses ``a`` for good, ``b`` once, then accepts."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.calls.append(list(ack_ids))
        if len(self.calls) == 1:
            raise _refusal(
                a="PERMANENT_FAILURE_INVALID_ACK_ID", b="TRANSIENT_FAILURE_UNORDERED_ACK_ID"
            )


class _Publisher:
    def topic_path(self, project: str, name: str) -> str:
        return f"projects/{project}/topics/{name}"


def test_a_refused_ack_is_not_counted_and_a_transient_one_is_retried() -> None:
    subscriber = _RefusingSubscriber()
    bus = PubSubBus(_Publisher(), subscriber, "p")  # type: ignore[arg-type]
    assert bus.ack(["a", "b", "c"]) == 2  # c at once, b on the retry; a's lease is gone
    assert subscriber.calls == [["a", "b", "c"], ["b"]]
