"""Alerts, as an on-call engineer gets them: a real webhook receiver on loopback, the
real command line against the bundled server, a real data folder. One message when an
incident opens, none while it lasts, one when it ends; a dead webhook fails nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ey_platform.bus.base import Message
from ey_platform.settings import load_settings
from ey_platform.source.data import Catalog
from ey_platform.wiring import check_bus, consumer_parts, make_alerts
from tests.cli import cli, one_error_line, rows
from tests.conftest import FakeStore

DAY, NEXT_DAY, THIRD_DAY = "2026-11-26", "2026-11-27", "2026-11-28"


@dataclass
class Receiver:
    """An incoming webhook: what it was sent, and the status it answers with."""

    url: str
    texts: list[str] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.texts.append(json.loads(body)["text"])
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret-part"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_a_failing_batch_alerts_once_and_its_recovery_once(
    fakestore: FakeStore, data: Path, webhook: Receiver
) -> None:
    alerting = {"EYP_ALERTS__WEBHOOK_URL": webhook.url, "EYP_ENVIRONMENT": "staging"}
    fakestore.faults("error=1.0")
    line = one_error_line(cli(data, fakestore.url, "batch", "--date", DAY, **alerting))
    assert "503" in line
    assert len(webhook.texts) == 1
    (opened,) = webhook.texts
    assert opened.startswith("[staging] batch: failed: ") and "503" in opened
    assert "What to do:" in opened and "ey-platform batch --date" in opened
    # The same incident again: nothing is sent.
    one_error_line(cli(data, fakestore.url, "batch", "--date", DAY, **alerting))
    assert len(webhook.texts) == 1
    fakestore.faults("")
    good = cli(data, fakestore.url, "batch", "--date", DAY, **alerting)
    assert good.returncode == 0, good.stderr
    assert len(webhook.texts) == 2
    assert webhook.texts[1].startswith("[staging] resolved: batch: failed: ")
    # A good run after that announces nothing: the incident is over.
    assert cli(data, fakestore.url, "batch", "--date", DAY, **alerting).returncode == 0
    assert len(webhook.texts) == 2
    assert rows(data, "SELECT incident, resolved_at IS NOT NULL FROM bq_raw._incidents") == [
        ("batch.failed", True)
    ]


def test_a_held_day_is_alerted_recorded_and_its_url_never_shown(
    fakestore: FakeStore, data: Path, webhook: Receiver
) -> None:
    alerting = {"EYP_ALERTS__WEBHOOK_URL": webhook.url}
    assert cli(data, fakestore.url, "batch", "--date", DAY, **alerting).returncode == 0
    assert webhook.texts == []
    fakestore.state.catalog = Catalog(n_users=4)
    held = cli(data, fakestore.url, "batch", "--date", NEXT_DAY, **alerting)
    one_error_line(held)
    (alert,) = webhook.texts
    assert "users held: 4 users records, fewer than 50% of the median 10" in alert
    assert "--force" in alert
    assert rows(
        data,
        "SELECT status, observed FROM bq_raw._quality_results "
        "WHERE check_name = 'volume' AND entity = 'users' ORDER BY checked_at",
    ) == [("pass", "10 records"), ("fail", "4 records")]
    assert "secret-part" not in held.stderr + held.stdout
    config = cli(data, fakestore.url, "config", **alerting)
    assert "secret-part" not in config.stdout and "**********" in config.stdout


def test_drift_is_recorded_under_warn_and_holds_the_day_under_freeze(
    fakestore: FakeStore, data: Path, webhook: Receiver
) -> None:
    alerting = {"EYP_ALERTS__WEBHOOK_URL": webhook.url}
    assert cli(data, fakestore.url, "batch", "--date", DAY, **alerting).returncode == 0
    fakestore.faults("drift=1")
    warned = cli(data, fakestore.url, "batch", "--date", NEXT_DAY, **alerting)
    assert warned.returncode == 0, warned.stderr
    drift = dict(
        rows(
            data,
            "SELECT entity, observed FROM bq_raw._quality_results "
            "WHERE check_name = 'schema' AND status = 'warn'",
        )
    )
    assert set(drift) == {"products", "users"}
    assert "added: promo_code" in drift["products"]
    assert "retyped: price number -> string" in drift["products"]
    assert "address.number number -> string" in drift["users"]
    assert len(webhook.texts) == 2 and all("schema of" in text for text in webhook.texts)
    assert rows(
        data, f"SELECT count(*) FROM bq_raw.users WHERE _ingestion_date = '{NEXT_DAY}'"
    ) == [(10,)]
    # Under freeze the drifted day waits; the day before stays what the warehouse holds.
    fakestore.faults("")  # back to the original shape: a drift from the drifted day
    frozen = cli(
        data, fakestore.url, "batch", "--date", THIRD_DAY, EYP_BATCH__SCHEMA_POLICY="freeze"
    )
    line = one_error_line(frozen)
    assert "schema drift" in line and "removed: promo_code" in line
    assert rows(
        data, f"SELECT count(*) FROM bq_raw.users WHERE _ingestion_date = '{THIRD_DAY}'"
    ) == [(0,)]


def test_a_dead_webhook_fails_nothing_and_the_alert_is_sent_later(
    fakestore: FakeStore, data: Path, webhook: Receiver
) -> None:
    alerting = {"EYP_ALERTS__WEBHOOK_URL": webhook.url}
    webhook.status = 500
    fakestore.faults("error=1.0")
    failed = cli(data, fakestore.url, "batch", "--date", DAY, **alerting)
    assert "503" in one_error_line(failed)  # the job's own error, not the webhook's
    assert "alert.failed" in failed.stderr and "status=500" in failed.stderr
    assert "secret-part" not in failed.stderr + failed.stdout
    assert len(webhook.texts) == 1
    # Still failing, and now the webhook takes it: the opening is sent, once.
    webhook.status = 200
    one_error_line(cli(data, fakestore.url, "batch", "--date", DAY, **alerting))
    one_error_line(cli(data, fakestore.url, "batch", "--date", DAY, **alerting))
    assert len(webhook.texts) == 2 and "failed: " in webhook.texts[1]
    # A webhook nobody listens on: the good run succeeds all the same.
    fakestore.faults("")
    unreachable = {"EYP_ALERTS__WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    good = cli(data, fakestore.url, "--debug", "batch", "--date", DAY, **unreachable)
    assert good.returncode == 0, good.stderr
    assert "alert.failed" in good.stderr
    assert "/hook" not in good.stderr + good.stdout  # not even with --debug


def test_an_old_backlog_and_dead_letters_are_incidents_until_they_are_gone(
    data: Path, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `up` checks every minute, on a real bus file and warehouse file.
    monkeypatch.setenv("EYP_DATA_DIR", str(data))
    monkeypatch.setenv("EYP_ALERTS__WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("EYP_ALERTS__BACKLOG_AGE", "0.005")  # 0.3 s
    settings = load_settings()
    with consumer_parts(settings) as parts:
        parts.bus.publish([Message(b"not an event")])
        time.sleep(0.5)
        check_bus(settings, make_alerts(settings))
        check_bus(settings, make_alerts(settings))  # still old: nothing more
        (backlog,) = webhook.texts
        assert "consume: the oldest of 1 unacked messages has waited" in backlog
        assert "EYP_ALERTS__BACKLOG_AGE" in backlog
        parts.consumer.run(drain=True)  # dead-letters it: the backlog is gone
    check_bus(settings, make_alerts(settings))
    assert len(webhook.texts) == 3
    assert webhook.texts[1].startswith("[local] resolved: consume: the oldest of 1")
    assert webhook.texts[2].startswith("[local] consume: 1 messages are dead-lettered")
    check_bus(settings, make_alerts(settings))
    assert len(webhook.texts) == 3
