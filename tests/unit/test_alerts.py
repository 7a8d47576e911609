"""The webhook's URL is a secret: refused in one line that does not show it, and never
in a log line when the webhook fails."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from ey_platform.errors import ConfigError
from ey_platform.ops.alerts import Webhook
from ey_platform.settings import load_settings

SECRET = "T0AAAA/B0BBBB/s3cr3tPart"


@pytest.mark.parametrize("url", [f"hooks.slack.com/services/{SECRET}", f"ftp://h/{SECRET}", "x"])
def test_a_webhook_that_is_no_http_url_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("EYP_ALERTS__WEBHOOK_URL", url)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "EYP_ALERTS__WEBHOOK_URL: Value error, must be an http:// or https:// URL" in str(
        exc.value
    )
    assert url not in str(exc.value) and "s3cr3t" not in str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:9/services/{SECRET}",  # nothing listens: refused
        f"http://127.0.0.1:99999/services/{SECRET}",  # no such port: httpx's own error
    ],
)
def test_a_failing_webhook_is_logged_without_its_secret(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert Webhook(SecretStr(url), timeout=2).send("hello") is False
    (failed,) = [r for r in caplog.records if r.getMessage() == "alert.failed"]
    assert failed.error  # type: ignore[attr-defined]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "s3cr3t" not in logged
