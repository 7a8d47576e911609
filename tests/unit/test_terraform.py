"""infra/terraform agrees with the application: names, schemas, settings, roles; and it
passes terraform fmt and checkov."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

hcl2 = pytest.importorskip("hcl2")

from ey_platform.settings import Settings, load_settings, unknown_variables  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TF = INFRA / "terraform"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
IN_CI = os.environ.get("CI") == "true"


def _plain(value: Any) -> Any:
    """python-hcl2 output without HCL's quotes and its block markers."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load(name: str) -> dict[str, Any]:
    with (TF / name).open() as handle:
        return dict(_plain(hcl2.load(handle)))


def _resources(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for block in _load(name).get("resource", []):
        for kind, named in block.items():
            for label, body in named.items():
                found.append((kind, label, body))
    return found


def _defaults() -> dict[str, Any]:
    return {
        name: body.get("default")
        for block in _load("variables.tf")["variable"]
        for name, body in block.items()
    }


def test_terraform_names_are_the_settings_defaults() -> None:
    defaults, settings = _defaults(), Settings()
    assert defaults["bucket"] == settings.lake.bucket == "ey-data-platform-raw-data"
    assert defaults["raw_dataset"] == settings.warehouse.raw_dataset == "bq_raw"
    assert defaults["analytics_dataset"] == settings.warehouse.analytics_dataset == "bq_analytics"
    assert defaults["bigquery_location"] == settings.warehouse.bigquery_location
    assert defaults["topic"] == settings.bus.topic == "carts-events"
    assert defaults["subscription"] == settings.bus.subscription == "carts-events-sub"
    assert defaults["dead_letter_topic"] == settings.bus.dead_letter_topic == "carts-events-dlq"
    assert defaults["ack_deadline_seconds"] == settings.bus.ack_deadline
    assert defaults["max_delivery_attempts"] == settings.bus.max_delivery_attempts
    assert defaults["api_url"] == settings.api_url


def _locals(name: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _load(name)["locals"]:
        merged |= {k: v for k, v in block.items() if not k.startswith("__")}
    return merged


def test_the_jobs_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    local = _locals("run.tf")
    assert local["app_env"].startswith("${merge(local.settings, {")
    names = [*local["settings"], *re.findall(r"(EYP_\w+) =", local["app_env"])]
    assert local["settings"]["EYP_PROFILE"] == "gcp"
    for key in names:
        monkeypatch.setenv(key, "1" if key.endswith(("DEADLINE", "ATTEMPTS")) else "x")
    monkeypatch.setenv("EYP_API_URL", "https://fakestoreapi.com")
    monkeypatch.setenv("EYP_PROFILE", "gcp")
    assert load_settings().profile == "gcp"
    assert unknown_variables(dict.fromkeys(names, "x")) == []  # every name is a setting


def test_raw_table_schemas_match_the_bigquery_backend() -> None:
    pytest.importorskip("google.cloud.bigquery")
    from ey_platform.warehouse.bigquery import TABLES_FILE, _schema, _tables

    found = re.fullmatch(
        r'\$\{jsondecode\(file\("\$\{path\.module\}/(.+)"\)\)\}',
        _locals("bigquery.tf")["raw_tables"],
    )
    assert found, "raw_tables is not read from a file"
    terraform = orjson.loads((TF / found.group(1)).read_bytes())
    assert (TF / found.group(1)).resolve() == TABLES_FILE.resolve()
    app = {
        name: {
            "schema": [
                {"name": f.name, "type": f.field_type, "mode": f.mode}
                for f in _schema(spec["schema"])
            ],
            "partition": spec["partition"],
            "cluster": spec["cluster"],
        }
        for name, spec in _tables().items()
    }
    assert terraform == app
    assert set(app) == {"products", "users", "carts_events", "_quarantine", "_pipeline_runs"}


_GRANTS = {
    "batch": {
        "roles/storage.objectCreator",
        "roles/storage.objectViewer",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
    },
    "poller": {
        "roles/pubsub.publisher",
        "roles/storage.objectCreator",
        "roles/bigquery.dataViewer",
        "roles/bigquery.jobUser",
    },
    "consumer": {
        "roles/pubsub.subscriber",
        "roles/pubsub.publisher",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
    },
    "transform": {
        "roles/bigquery.dataViewer",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
    },
    "scheduler": {"roles/run.invoker"},
}


def test_each_identity_has_exactly_its_roles() -> None:
    granted: dict[str, set[str]] = {name: set() for name in _GRANTS}
    for name, grants in _locals("iam.tf").items():
        if name.endswith("_grants"):
            for grant in grants.values():
                granted[grant["job"]].add(grant["role"])
    for kind, _, body in _resources("iam.tf"):
        if kind.endswith("_iam_member") and body["member"].startswith("${local.sa."):
            granted[body["member"].removeprefix("${local.sa.").rstrip("}")].add(body["role"])
    assert granted == _GRANTS


def test_no_admin_or_basic_role_anywhere_in_infra() -> None:
    text = "\n".join(p.read_text() for p in INFRA.rglob("*") if p.is_file())
    roles = set(re.findall(r"roles/[A-Za-z0-9_.]+", text))
    assert roles, "no role found: the pattern is wrong"
    assert not {r for r in roles if r.endswith(".admin") or r in ("roles/owner", "roles/editor")}
    assert "google_service_account_key" not in text


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary")
def test_terraform_is_formatted() -> None:
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(TF)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"terraform fmt would change: {done.stdout}"


def test_checkov_passes_with_justified_skips() -> None:
    if not CHECKOV.exists():
        if IN_CI:
            pytest.fail(f"checkov is not installed at {CHECKOV}; make test installs it")
        pytest.skip("checkov is not installed (make test installs it)")
    done = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--compact", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", done.stdout)
    # every skip carries its reason next to the resource
    for path in TF.glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV_\w+:\S.{20,}", line), line
