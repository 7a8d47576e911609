"""infra/terraform agrees with the application and with itself: names, schemas, settings,
roles, environments, the CI deployer; and it passes terraform fmt and checkov.

Two configurations: bootstrap/ (applied once per environment by a project owner) and
the platform (infra/terraform, applied by the CI deployer). Where Terraform itself can
answer offline (variables, validations, locals: no provider involved), the tests ask it.
"""

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
BOOT = TF / "bootstrap"
CONFIGS = {"platform": TF, "bootstrap": BOOT}
ENVS = ("dev", "staging", "prod")
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
IN_CI = os.environ.get("CI") == "true"
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary")
DIGEST = "europe-west1-docker.pkg.dev/ey-test-dev/ey/ey-platform@sha256:" + "0a" * 32


def _plain(value: Any) -> Any:
    """python-hcl2 output without HCL's quotes, its block markers and comments."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(_plain(hcl2.load(handle)))


def _resources(config: Path) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in sorted(config.glob("*.tf")):
        for block in _load(path).get("resource", []):
            for kind, named in block.items():
                for label, body in named.items():
                    found.append((kind, label, body))
    return found


def _variables(config: Path) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for block in _load(config / "variables.tf")["variable"]
        for name, body in block.items()
    }


def _defaults(config: Path) -> dict[str, Any]:
    return {name: body.get("default") for name, body in _variables(config).items()}


def _locals(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _load(path).get("locals", []):
        merged |= block
    return merged


def _all_locals(config: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(config.glob("*.tf")):
        merged |= _locals(path)
    return merged


def _tfvars(config: Path, env: str) -> dict[str, Any]:
    return _load(config / "envs" / f"{env}.tfvars")


def _backend(config: Path, env: str) -> dict[str, Any]:
    return _load(config / "envs" / f"{env}.backend.hcl")


def test_terraform_names_are_the_settings_defaults() -> None:
    settings = Settings()
    for config in CONFIGS.values():
        defaults = _defaults(config)
        assert defaults["raw_dataset"] == settings.warehouse.raw_dataset == "bq_raw"
        assert defaults["analytics_dataset"] == settings.warehouse.analytics_dataset
        assert settings.warehouse.analytics_dataset == "bq_analytics"
        assert defaults["bigquery_location"] == settings.warehouse.bigquery.location
        # Bucket names are global: each environment names its own, nothing defaults.
        assert "default" not in _variables(config)["bucket"]
    defaults = _defaults(TF)
    assert defaults["topic"] == settings.bus.topic == "carts-events"
    assert defaults["subscription"] == settings.bus.subscription == "carts-events-sub"
    assert defaults["dead_letter_topic"] == settings.bus.dead_letter_topic == "carts-events-dlq"
    assert defaults["ack_deadline_seconds"] == settings.bus.ack_deadline
    assert defaults["max_delivery_attempts"] == settings.bus.max_delivery_attempts
    assert defaults["api_url"] == settings.api_url
    assert defaults["alert_backlog_age_minutes"] == settings.alerts.backlog_age == 15
    buckets = {_tfvars(TF, env)["bucket"] for env in ENVS}
    assert len(buckets) == len(ENVS)
    # The dataset the deploy workflow's dbt check builds in, created by bootstrap/.
    script = (ROOT / "scripts" / "deploy.sh").read_text()
    found = re.search(r"EYP_DBT_CI_DATASET:-(\w+)\}", script)
    assert found, "scripts/deploy.sh names no default CI dataset"
    assert _defaults(BOOT)["ci_dataset"] == found.group(1)


_NAME_KEYS = {
    "name",
    "account_id",
    "dataset_id",
    "table_id",
    "repository_id",
    "workload_identity_pool_id",
    "workload_identity_pool_provider_id",
    "secret_id",
}


def test_names_carry_no_environment() -> None:
    # One project per environment: the project is the environment, so no name repeats it.
    names = []
    for config in CONFIGS.values():
        for kind, label, body in _resources(config):
            for key in _NAME_KEYS & body.keys():
                names.append((kind, label, body[key]))
    assert len(names) > 20, "no names found: the parsing is wrong"
    assert [n for n in names if "var.environment" in str(n[2])] == []
    run = {(kind, label): body["name"] for kind, label, body in _resources(TF) if "name" in body}
    assert run[("google_cloud_run_v2_job", "job")] == "ey-${each.key}"
    assert run[("google_cloud_run_v2_worker_pool", "worker")] == "ey-${each.key}"


def test_each_environment_has_tfvars_and_a_backend_of_its_own() -> None:
    prefixes = []
    for name, config in CONFIGS.items():
        terraform = _load(config / "versions.tf")["terraform"][0]
        assert terraform["backend"] == [{"gcs": {}}], f"{name}: not a partial gcs backend"
        for env in ENVS:
            assert _tfvars(config, env)["environment"] == env
            backend = _backend(config, env)
            assert set(backend) == {"bucket", "prefix"}
            prefixes.append(backend["prefix"])
    assert len(set(prefixes)) == len(prefixes) == 2 * len(ENVS)
    state_prefix = _locals(BOOT / "main.tf")["platform_state_prefix"]
    assert state_prefix == "ey-data-platform/${var.environment}/platform"
    for env in ENVS:
        platform, bootstrap = _tfvars(TF, env), _tfvars(BOOT, env)
        # The deployer's access to the state is granted on the platform's prefix.
        assert _backend(TF, env)["prefix"] == state_prefix.replace("${var.environment}", env)
        assert _backend(BOOT, env)["prefix"] == f"ey-data-platform/{env}/bootstrap"
        assert _backend(TF, env)["bucket"] == _backend(BOOT, env)["bucket"]
        assert bootstrap["state_bucket"] == _backend(BOOT, env)["bucket"]
        shared = platform.keys() & bootstrap.keys()
        assert {"project", "region", "bigquery_location", "bucket"} <= shared
        assert {k: platform[k] for k in shared} == {k: bootstrap[k] for k in shared}


def test_tfvars_set_every_variable_without_a_default() -> None:
    for name, config in CONFIGS.items():
        variables = _variables(config)
        required = {v for v, body in variables.items() if "default" not in body}
        required -= {"image"}  # the deploy workflow or a rollback passes the digest
        assert "project" in required and "bucket" in required
        for env in ENVS:
            tfvars = _tfvars(config, env)
            assert required - tfvars.keys() == set(), f"{name} {env}: not set"
            assert tfvars.keys() - variables.keys() == set(), f"{name} {env}: undeclared"


class Offline:
    """Each configuration's variables.tf alone, initialised on first use: terraform
    evaluates the variables, their validations and locals with no provider, no network."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.dirs:
            work = self.root / name
            work.mkdir()
            shutil.copy(CONFIGS[name] / "variables.tf", work / "variables.tf")
            _terraform(work, "init", "-input=false", "-backend=false").check_returncode()
            self.dirs[name] = work
        return self.dirs[name]


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Offline:
    return Offline(tmp_path_factory.mktemp("terraform"))


def _terraform(
    work: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    return subprocess.run(
        [TERRAFORM, f"-chdir={work}", *args, "-no-color"],
        capture_output=True,
        text=True,
        check=False,
        input=stdin,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )


# Placeholders whose value has a fixed shape, and a valid value of that shape.
_EXAMPLES = {"billing_account": "0A1B2C-3D4E5F-60718A"}


def _filled(config: Path, env: str) -> list[str]:
    """-var options that replace the tfvars' REPLACE-ME placeholders by valid values."""
    return [
        f"-var={key}={_EXAMPLES.get(key) or value.replace('REPLACE-ME', 'example-org').lower()}"
        for key, value in _tfvars(config, env).items()
        if isinstance(value, str) and value.startswith("REPLACE-ME")
    ]


def _plan(work: Path, config: Path, env: str, *extra: str) -> subprocess.CompletedProcess[str]:
    tfvars = config / "envs" / f"{env}.tfvars"
    image = [f"-var=image={DIGEST}"] if config == TF else []
    return _terraform(work, "plan", "-input=false", f"-var-file={tfvars}", *image, *extra)


@needs_terraform
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_terraform_accepts_each_environment(offline: Offline, name: str, env: str) -> None:
    config = CONFIGS[name]
    done = _plan(offline[name], config, env, *_filled(config, env))
    assert done.returncode == 0, done.stderr
    assert "undeclared variable" not in done.stdout + done.stderr
    # The placeholders themselves are refused, naming what to set.
    done = _plan(offline[name], config, env)
    assert done.returncode != 0
    assert "set it in envs/ENV.tfvars" in done.stderr


@needs_terraform
def test_terraform_refuses_an_unknown_environment_and_an_image_by_tag(
    offline: Offline,
) -> None:
    fill = _filled(TF, "staging")
    done = _plan(offline["platform"], TF, "staging", *fill, "-var=environment=qa")
    assert done.returncode != 0
    assert "environment must be dev, staging or prod" in done.stderr
    for image in (
        "europe-west1-docker.pkg.dev/p/ey/ey-platform:latest",
        "ey-platform@sha256:" + "0a" * 32,
        DIGEST[:-1],
    ):
        done = _plan(offline["platform"], TF, "staging", *fill, f"-var=image={image}")
        assert done.returncode != 0, image
        assert "image must be a reference by digest" in done.stderr
    done = _plan(offline["platform"], TF, "staging", *fill)
    assert done.returncode == 0, done.stderr


def _github_condition(work: Path, env: str) -> str:
    text = (BOOT / "deployer.tf").read_text()
    found = re.search(r"(?ms)^locals \{\n  github_conditions = .*?^\}\n", text)
    assert found, "local.github_conditions not found in bootstrap/deployer.tf"
    (work / "github.tf").write_text(found.group(0))
    tfvars = BOOT / "envs" / f"{env}.tfvars"
    done = _terraform(
        work,
        "console",
        f"-var-file={tfvars}",
        *_filled(BOOT, env),
        stdin='join(" && ", local.github_conditions)\n',
    )
    assert done.returncode == 0, done.stderr
    return str(orjson.loads(done.stdout.strip()))


@needs_terraform
def test_github_actions_may_act_as_the_deployer_only_from_the_repository_and_environment(
    offline: Offline,
) -> None:
    resources = {(kind, label): body for kind, label, body in _resources(BOOT)}
    provider = resources[("google_iam_workload_identity_pool_provider", "github")]
    assert provider["oidc"] == [{"issuer_uri": "https://token.actions.githubusercontent.com"}]
    assert provider["attribute_mapping"]["google.subject"] == "assertion.sub"
    assert provider["attribute_condition"] == '${join(" && ", local.github_conditions)}'
    repo = "example-org/ey-data-platform"
    assert _github_condition(offline["bootstrap"], "dev") == (
        f"assertion.sub == 'repo:{repo}:environment:dev'"
    )
    assert _github_condition(offline["bootstrap"], "staging") == (
        f"assertion.sub == 'repo:{repo}:environment:staging'"
    )
    assert _github_condition(offline["bootstrap"], "prod") == (
        f"assertion.sub == 'repo:{repo}:environment:prod' && assertion.ref == 'refs/heads/main'"
    )
    impersonation = [
        body
        for kind, _, body in _resources(BOOT)
        if body.get("role") == "roles/iam.workloadIdentityUser"
    ]
    assert impersonation == [
        {
            "service_account_id": "${google_service_account.deployer.name}",
            "role": "roles/iam.workloadIdentityUser",
            "member": "principalSet://iam.googleapis.com/"
            "${google_iam_workload_identity_pool.github.name}"
            "/attribute.repository/${var.github_repository}",
        }
    ]


def test_the_apis_are_enabled_as_code_and_come_first() -> None:
    resources = _resources(BOOT)
    services = [body for kind, _, body in resources if kind == "google_project_service"]
    assert services == [
        {"for_each": "${local.services}", "service": "${each.key}", "disable_on_destroy": False}
    ]
    assert set(_all_locals(BOOT)["services"].removeprefix("${toset(").split('"')[1::2]) == {
        f"{api}.googleapis.com"
        for api in (
            "artifactregistry",
            "bigquery",
            "billingbudgets",
            "cloudresourcemanager",
            "cloudscheduler",
            "iam",
            "iamcredentials",
            "logging",
            "monitoring",
            "pubsub",
            "run",
            "secretmanager",
            "storage",
            "sts",
        )
    }
    first = {
        "google_service_account",
        "google_iam_workload_identity_pool",
        "google_artifact_registry_repository",
        "google_storage_bucket",
        "google_bigquery_dataset",
        "google_monitoring_notification_channel",
        "google_billing_budget",
        "google_secret_manager_secret",
    }
    creating = [(kind, label, body) for kind, label, body in resources if kind in first]
    assert {kind for kind, _, _ in creating} == first
    for kind, label, body in creating:
        assert body.get("depends_on") == ["${google_project_service.enabled}"], (kind, label)


def test_the_long_running_loops_are_worker_pools_and_the_poller_is_alone() -> None:
    local = _locals(TF / "run.tf")
    assert set(local["run_jobs"]) == {"batch", "transform"}
    assert set(local["schedules"]) == {"batch", "transform"}
    workers = local["workers"]
    assert workers["poller"]["args"] == ["stream", "poll"]
    assert workers["poller"]["instances"] == 1  # a constant: one poller, always
    assert workers["consumer"]["args"] == ["stream", "consume"]
    assert workers["consumer"]["instances"] == "${var.consumer_instances}"
    pools = [body for kind, _, body in _resources(TF) if kind == "google_cloud_run_v2_worker_pool"]
    assert len(pools) == 1
    assert pools[0]["for_each"] == "${local.workers}"
    assert pools[0]["scaling"] == [
        {"scaling_mode": "MANUAL", "manual_instance_count": "${each.value.instances}"}
    ]
    (template,) = pools[0]["template"]
    assert template["service_account"] == "${local.email[each.key]}"
    assert template["containers"][0]["image"] == "${var.image}"
    assert "stream_restart_schedule" not in _variables(TF)
    assert "86400s" not in (TF / "run.tf").read_text()


def test_the_jobs_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    local = _locals(TF / "run.tf")
    assert local["app_env"].startswith("${merge(local.settings, {")
    names = [*local["settings"], *re.findall(r"(EYP_\w+) =", local["app_env"])]
    assert local["settings"]["EYP_PROFILE"] == "gcp"
    # The environment's name labels BigQuery jobs; the backlog threshold is the alert
    # policy's (monitoring.tf), so the application and Cloud Monitoring agree.
    assert local["settings"]["EYP_ENVIRONMENT"] == "${var.environment}"
    assert local["settings"]["EYP_ALERTS__BACKLOG_AGE"] == (
        "${tostring(var.alert_backlog_age_minutes)}"
    )
    numbers = ("DEADLINE", "ATTEMPTS", "BACKLOG_AGE")
    for key in names:
        monkeypatch.setenv(key, "1" if key.endswith(numbers) else "x")
    monkeypatch.setenv("EYP_API_URL", "https://fakestoreapi.com")
    monkeypatch.setenv("EYP_PROFILE", "gcp")
    loaded = load_settings()
    assert loaded.profile == "gcp"
    assert (loaded.environment, loaded.alerts.backlog_age) == ("x", 1.0)
    assert unknown_variables(dict.fromkeys(names, "x")) == []  # every name is a setting


def _secret_env(work: Path, *options: str) -> Any:
    """local.secret_env of run.tf, evaluated by terraform over the variables."""
    blocks = [
        block
        for block in re.findall(r"(?ms)^locals \{\n.*?^\}\n", (TF / "run.tf").read_text())
        if re.search(r"^  secret_env += ", block, re.M)
    ]
    assert len(blocks) == 1, "run.tf: the locals of secret_env not found"
    (work / "secret_env.tf").write_text(blocks[0])
    done = _terraform(
        work,
        "console",
        f"-var-file={TF / 'envs' / 'dev.tfvars'}",
        f"-var=image={DIGEST}",
        *_filled(TF, "dev"),
        *options,
        stdin="jsonencode(local.secret_env)\n",
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(orjson.loads(done.stdout.strip()))


def _containers() -> dict[str, dict[str, Any]]:
    """The container of the Cloud Run jobs and of the worker pools, by resource kind."""
    found = {}
    for kind, _, body in _resources(TF):
        if kind == "google_cloud_run_v2_job":
            assert body["for_each"] == "${local.run_jobs}"
            ((template,),) = [job["template"] for job in body["template"]]
        elif kind == "google_cloud_run_v2_worker_pool":
            assert body["for_each"] == "${local.workers}"
            (template,) = body["template"]
        else:
            continue
        (found[kind],) = template["containers"]
    return found


@needs_terraform
def test_the_webhook_is_read_from_its_secret_by_every_job_and_worker_pool_when_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Off by default: Cloud Run refuses a secret that has no version yet.
    assert _variables(TF)["alerts_webhook"]["type"] == "bool"
    assert _defaults(TF)["alerts_webhook"] is False
    work = Offline(tmp_path)["platform"]
    assert _secret_env(work) == {}
    assert _secret_env(work, "-var=alerts_webhook=false") == {}
    assert _secret_env(work, "-var=alerts_webhook=true") == {
        "EYP_ALERTS__WEBHOOK_URL": "ey-alerts-webhook"
    }
    # Each job and worker pool (one resource each, over every name) gets the plain
    # settings and, from Secret Manager, those of secret_env: with it empty, nothing
    # but the plain settings.
    plain = {
        "for_each": "${local.app_env}",
        "content": [{"name": "${env.key}", "value": "${env.value}"}],
    }
    secret = {
        "for_each": "${local.secret_env}",
        "content": [
            {
                "name": "${env.key}",
                "value_source": [
                    {"secret_key_ref": [{"secret": "${env.value}", "version": "latest"}]}
                ],
            }
        ],
    }
    containers = _containers()
    assert set(containers) == {"google_cloud_run_v2_job", "google_cloud_run_v2_worker_pool"}
    for kind, container in containers.items():
        assert "env" not in container, kind
        assert container["dynamic"] == [{"env": plain}, {"env": secret}], kind
    platform = "\n".join(p.read_text() for p in TF.glob("*.tf") if p.name != "variables.tf")
    assert len(re.findall(r"\bvar\.alerts_webhook\b", platform)) == 1  # secret_env only
    # The secret is not among the plain settings (nor in the settings output), and its
    # variable is the application's webhook setting.
    local = _locals(TF / "run.tf")
    names = [*local["settings"], *re.findall(r"(EYP_\w+) =", local["app_env"])]
    assert "EYP_ALERTS__WEBHOOK_URL" not in names
    assert unknown_variables({"EYP_ALERTS__WEBHOOK_URL": "x"}) == []
    monkeypatch.setenv("EYP_ALERTS__WEBHOOK_URL", "https://chat.example.com/hook")
    webhook = load_settings().alerts.webhook_url
    assert webhook is not None and webhook.get_secret_value() == "https://chat.example.com/hook"


def test_the_raw_layer_is_read_from_the_application_schema_file() -> None:
    from ey_platform.warehouse.raw_schema import SCHEMA_FILE, raw_schema

    found = re.fullmatch(
        r'\$\{jsondecode\(file\("\$\{path\.module\}/(.+)"\)\)\}',
        _locals(TF / "bigquery.tf")["raw_schema"],
    )
    assert found, "raw_schema is not read from a file"
    assert (TF / found.group(1)).resolve() == SCHEMA_FILE.resolve()
    tables = {
        label: body for kind, label, body in _resources(TF) if kind == "google_bigquery_table"
    }
    assert tables["raw"]["for_each"] == "${local.raw_tables}"
    assert tables["raw_view"]["for_each"] == "${local.raw_views}"
    assert tables["raw_view"]["view"] == [{"query": "${each.value}", "use_legacy_sql": False}]
    assert set(raw_schema().tables) == {
        "products",
        "users",
        "carts_events",
        "_quarantine",
        "_pipeline_runs",
        "_quality_results",
        "_incidents",
    }
    assert set(raw_schema().views) == {"cart_states"}


@needs_terraform
def test_raw_table_schemas_and_views_match_the_bigquery_backend(tmp_path: Path) -> None:
    pytest.importorskip("google.cloud.bigquery")
    from types import SimpleNamespace

    from ey_platform.warehouse.bigquery import BigQueryWarehouse
    from ey_platform.warehouse.bigquery.ddl import schema_fields
    from ey_platform.warehouse.raw_schema import SCHEMA_FILE, raw_schema

    text = (TF / "bigquery.tf").read_text()
    found = re.search(r"(?ms)^locals \{\n.*?^\}\n", text)
    assert found, "no locals block in bigquery.tf"
    work = Offline(tmp_path)["platform"]
    (work / "raw.tf").write_text(
        found.group(0).replace(
            "${path.module}/../../src/ey_platform/warehouse/raw_schema.json", str(SCHEMA_FILE)
        )
    )
    done = _terraform(
        work,
        "console",
        f"-var-file={TF / 'envs' / 'dev.tfvars'}",
        f"-var=image={DIGEST}",
        *_filled(TF, "dev"),
        "-var=project=ey-test-dev",
        stdin="jsonencode({ tables = local.raw_tables, views = local.raw_views })\n",
    )
    assert done.returncode == 0, done.stderr
    terraform = orjson.loads(orjson.loads(done.stdout.strip()))
    tables = {
        name: {**spec, "schema": orjson.loads(spec["schema"])}
        for name, spec in terraform["tables"].items()
    }
    app = {
        name: {
            "schema": [
                {"name": f.name, "type": f.field_type, "mode": f.mode}
                for f in schema_fields(spec.columns)
            ],
            "partition": spec.partition,
            "cluster": list(spec.cluster),
        }
        for name, spec in raw_schema().tables.items()
    }
    assert tables == app
    client = SimpleNamespace(project="ey-test-dev")
    warehouse = BigQueryWarehouse(client, _defaults(TF)["raw_dataset"])  # type: ignore[arg-type]
    views = {name: view.sql(warehouse.table) for name, view in raw_schema().views.items()}
    assert terraform["views"] == views
    assert "`ey-test-dev.bq_raw.carts_events`" in views["cart_states"]


# The workloads that send the application's alerts read the webhook's secret
# (bootstrap/secrets.tf), on that secret only.
_WEBHOOK_READER = "roles/secretmanager.secretAccessor"
_GRANTS = {
    "batch": {
        "roles/storage.objectCreator",
        "roles/storage.objectViewer",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
        _WEBHOOK_READER,
    },
    "poller": {
        "roles/pubsub.publisher",
        "roles/storage.objectCreator",
        "roles/bigquery.dataViewer",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
        _WEBHOOK_READER,
    },
    "consumer": {
        "roles/pubsub.subscriber",
        "roles/pubsub.publisher",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
        _WEBHOOK_READER,
    },
    "transform": {
        "roles/bigquery.dataViewer",
        "roles/bigquery.dataEditor",
        "roles/bigquery.jobUser",
        _WEBHOOK_READER,
    },
    "scheduler": {"roles/run.invoker"},
    # BI tools: the published marts (bq_analytics) and the queries that read them.
    "bi": {"roles/bigquery.dataViewer", "roles/bigquery.jobUser"},
    "deployer": {
        "roles/run.developer",
        "roles/cloudscheduler.admin",
        "roles/pubsub.admin",
        "roles/bigquery.jobUser",
        "roles/bigquery.dataOwner",
        "roles/bigquery.dataViewer",
        "roles/bigquery.dataEditor",
        "roles/iam.serviceAccountUser",
        "roles/artifactregistry.writer",
        "roles/storage.objectAdmin",
        # What monitoring.tf creates: alert policies, their channels, the dashboard and
        # the log-based metrics.
        "roles/monitoring.alertPolicyEditor",
        "roles/monitoring.notificationChannelEditor",
        "roles/monitoring.dashboardEditor",
        "roles/logging.configWriter",
    },
}


def _granted() -> dict[str, set[str]]:
    """Every role of every identity, over both configurations: the `*_grants` maps and
    the grants to one named identity."""
    granted: dict[str, set[str]] = {}
    for config in CONFIGS.values():
        for name, grants in _all_locals(config).items():
            if name.endswith("_grants"):
                for grant in grants.values():
                    granted.setdefault(grant["identity"], set()).add(grant["role"])
        for kind, _, body in _resources(config):
            member = str(body.get("member", ""))
            if kind.endswith("_iam_member") and member.startswith("${local.sa."):
                who = member.removeprefix("${local.sa.").rstrip("}")
                granted.setdefault(who, set()).add(body["role"])
    return granted


def test_each_identity_has_exactly_its_roles() -> None:
    assert _granted() == _GRANTS
    accounts = {
        body["account_id"] for kind, _, body in _resources(BOOT) if kind == "google_service_account"
    }
    assert accounts == {"ey-${each.key}", "ey-deployer", "ey-bi"}
    identities = _all_locals(BOOT)["identities"]
    assert set(identities) == set(_GRANTS) - {"deployer", "bi"}
    # The platform names the same accounts the bootstrap creates.
    assert _locals(TF / "main.tf")["identities"] == '${toset(["' + '", "'.join(identities) + '"])}'


def _dataset_grants() -> dict[str, set[tuple[str, str]]]:
    """The grants on each dataset of the bootstrap, as (identity, role), by dataset
    resource: its ``google_bigquery_dataset_iam_member`` over a ``*_dataset_grants``."""
    grants = _all_locals(BOOT)
    found: dict[str, set[tuple[str, str]]] = {}
    for kind, label, body in _resources(BOOT):
        if kind != "google_bigquery_dataset_iam_member":
            continue
        assert body["dataset_id"] == f"${{google_bigquery_dataset.{label}.dataset_id}}"
        assert body["for_each"] == f"${{local.{label}_dataset_grants}}", label
        assert (body["role"], body["member"]) == (
            "${each.value.role}",
            "${local.sa[each.value.identity]}",
        )
        found[label] = {
            (g["identity"], g["role"]) for g in grants[f"{label}_dataset_grants"].values()
        }
    return found


def test_the_build_dataset_is_written_by_the_transform_alone_and_declared_as_analytics_is() -> None:
    datasets = {
        label: body for kind, label, body in _resources(BOOT) if kind == "google_bigquery_dataset"
    }
    build, analytics = datasets["build"], datasets["analytics"]
    # The name the application derives from the analytics dataset's.
    assert build["dataset_id"] == "${var.analytics_dataset}_build"
    assert Settings().warehouse.build_dataset == f"{_defaults(BOOT)['analytics_dataset']}_build"
    # Same location, labels and protections as the published dataset; nothing expires
    # (the product snapshot's history is there).
    same = ("location", "labels", "delete_contents_on_destroy", "depends_on")
    assert {k: build[k] for k in same} == {k: analytics[k] for k in same}
    assert build["delete_contents_on_destroy"] is False
    assert "default_table_expiration_ms" not in build
    grants = _dataset_grants()
    # The transform writes it; the deployer's dbt check only reads it (deferred reads).
    assert grants["build"] == {
        ("transform", "roles/bigquery.dataEditor"),
        ("deployer", "roles/bigquery.dataViewer"),
    }
    assert ("transform", "roles/bigquery.dataEditor") in grants["analytics"]  # it publishes


def test_the_bi_identity_reads_the_published_marts_only_and_has_no_key() -> None:
    resources = {(kind, label): body for kind, label, body in _resources(BOOT)}
    account = resources[("google_service_account", "bi")]
    assert account["account_id"] == "ey-bi"
    assert account["depends_on"] == ["${google_project_service.enabled}"]
    held = {
        dataset: {role for who, role in grants if who == "bi"}
        for dataset, grants in _dataset_grants().items()
    }
    assert held == {
        "raw": set(),
        "analytics": {"roles/bigquery.dataViewer"},
        "build": set(),
        "ci": set(),
    }
    project = _all_locals(BOOT)["project_grants"]
    assert [g["role"] for g in project.values() if g["identity"] == "bi"] == [
        "roles/bigquery.jobUser"
    ]
    # It runs no workload: the deployer may not act as it, and no job or pool runs as it.
    acts_as = resources[("google_service_account_iam_member", "deployer_acts_as")]
    assert acts_as["for_each"] == "${google_service_account.job}"
    assert "bi" not in _locals(TF / "main.tf")["identities"]
    # Nobody may impersonate it yet: the owner grants that to a BI tool. (No key exists:
    # test_the_deployer_comes_from_github_by_federation_and_no_key_exists scans infra/.)
    assert [
        label
        for kind, label, body in _resources(BOOT)
        if kind.startswith("google_service_account_iam")
        and "google_service_account.bi" in str(body.get("service_account_id"))
    ] == []
    outputs = {
        name: body for block in _load(BOOT / "outputs.tf")["output"] for name, body in block.items()
    }
    assert outputs["bi_service_account"]["value"] == "${google_service_account.bi.email}"


# The grants on single tables of bq_raw (iam.tf), as (identity, table, role): those who
# use a few of its tables. The batch and the consumer write the dataset (bootstrap).
_TABLE_GRANTS = {
    ("poller", "carts_events", "roles/bigquery.dataViewer"),
    ("poller", "_incidents", "roles/bigquery.dataEditor"),
    ("transform", "_incidents", "roles/bigquery.dataEditor"),
    ("transform", "_pipeline_runs", "roles/bigquery.dataEditor"),
    ("transform", "_quality_results", "roles/bigquery.dataEditor"),
}


def test_the_poller_and_the_transform_hold_exactly_their_table_grants() -> None:
    from ey_platform.warehouse.raw_schema import raw_schema

    grants = _locals(TF / "iam.tf")["raw_table_grants"]
    found = {(g["identity"], g["table"], g["role"]) for g in grants.values()}
    assert len(found) == len(grants)  # no grant twice, under two keys
    assert found == _TABLE_GRANTS
    # Tables of the raw layer (a key of google_bigquery_table.raw), not its view.
    assert {table for _, table, _ in found} <= set(raw_schema().tables)
    members = {
        label: body
        for kind, label, body in _resources(TF)
        if kind == "google_bigquery_table_iam_member"
    }
    assert set(members) == {"raw", "raw_view"}
    # The poller reads its memory through the cart_states view: a grant on the view too.
    view = members["raw_view"]
    assert view["table_id"] == '${google_bigquery_table.raw_view["cart_states"].table_id}'
    assert (view["role"], view["member"]) == ("roles/bigquery.dataViewer", "${local.sa.poller}")
    member = members["raw"]
    assert member["for_each"] == "${local.raw_table_grants}"
    assert member["dataset_id"] == "${var.raw_dataset}"
    assert member["table_id"] == "${google_bigquery_table.raw[each.value.table].table_id}"
    assert (member["role"], member["member"]) == (
        "${each.value.role}",
        "${local.sa[each.value.identity]}",
    )
    # No table grant repeats a grant on the dataset.
    dataset = _all_locals(BOOT)["raw_dataset_grants"].values()
    editors = {g["identity"] for g in dataset if g["role"] == "roles/bigquery.dataEditor"}
    assert {who for who, _, _ in found} & editors == set()
    # The poller's first grant moved to its new address: kept, not destroyed and created.
    (moved,) = _load(TF / "iam.tf")["moved"]
    assert (moved["from"], moved["to"]) == (
        '${google_bigquery_table_iam_member.events["poller"]}',
        '${google_bigquery_table_iam_member.raw["poller_events"]}',
    )
    assert grants["poller_events"] == {
        "identity": "poller",
        "table": "carts_events",
        "role": "roles/bigquery.dataViewer",
    }


def _readme_identity_table() -> dict[str, set[str]]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| identity |"))
    table: dict[str, set[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        who, roles = (cell.strip() for cell in line.strip("|").split("|", 1))
        found = re.fullmatch(r"`ey-([a-z]+)`", who)
        assert found, f"README identity table: {who!r} is not an `ey-NAME` identity"
        table[found.group(1)] = {
            f"roles/{role}" for role in re.findall(r"`([a-z]+\.[A-Za-z]+)`", roles)
        }
    return table


def test_the_readme_identity_table_is_what_terraform_grants() -> None:
    assert _readme_identity_table() == _granted()


def test_the_alerts_webhook_secret_is_created_empty_and_read_on_it_by_the_workloads() -> None:
    found = [
        kind
        for config in CONFIGS.values()
        for kind, _, _ in _resources(config)
        if kind.startswith("google_secret_manager")
    ]
    # No version: its value would be in the state. The owner adds it by hand.
    assert sorted(found) == [
        "google_secret_manager_secret",
        "google_secret_manager_secret_iam_member",
    ]
    resources = {(kind, label): body for kind, label, body in _resources(BOOT)}
    secret = resources[("google_secret_manager_secret", "alerts_webhook")]
    assert secret["secret_id"] == "ey-alerts-webhook"
    assert secret["replication"] == [{"auto": [{}]}]
    assert secret["deletion_protection"] is True  # the version added by hand goes with it
    # The platform reads the secret bootstrap creates, by the same name.
    assert _locals(TF / "run.tf")["alerts_webhook_secret_id"] == secret["secret_id"]
    # Granted on that secret, to each identity a job or worker pool runs as.
    member = resources[("google_secret_manager_secret_iam_member", "alerts_webhook")]
    assert member["for_each"] == "${local.alerts_webhook_grants}"
    assert member["secret_id"] == "${google_secret_manager_secret.alerts_webhook.secret_id}"
    assert member["project"] == "${google_secret_manager_secret.alerts_webhook.project}"
    assert (member["role"], member["member"]) == (
        "${each.value.role}",
        "${local.sa[each.value.identity]}",
    )
    run = _locals(TF / "run.tf")
    senders = {*run["run_jobs"], *run["workers"]}
    assert senders == {"batch", "transform", "poller", "consumer"}
    grants = _all_locals(BOOT)["alerts_webhook_grants"]
    assert sorted(g["identity"] for g in grants.values()) == sorted(senders)
    assert {g["role"] for g in grants.values()} == {_WEBHOOK_READER}
    # Nowhere else: no other grant (on the project or any resource) reads secrets.
    elsewhere = [
        (name, key)
        for config in CONFIGS.values()
        for name, other in _all_locals(config).items()
        if name.endswith("_grants") and name != "alerts_webhook_grants"
        for key, grant in other.items()
        if grant["role"].startswith("roles/secretmanager.")
    ]
    elsewhere += [
        (kind, label)
        for config in CONFIGS.values()
        for kind, label, body in _resources(config)
        if str(body.get("role", "")).startswith("roles/secretmanager.")
    ]
    assert elsewhere == []


def _is_admin(role: str) -> bool:
    return role.lower().endswith("admin")


def test_no_basic_role_and_admin_roles_only_for_the_deployer() -> None:
    text = "\n".join(p.read_text() for p in INFRA.rglob("*") if p.is_file())
    roles = set(re.findall(r"roles/[A-Za-z0-9_.]+", text))
    assert roles, "no role found: the pattern is wrong"
    assert roles & {"roles/owner", "roles/editor", "roles/viewer"} == set()
    granted = _granted()
    for who, held in granted.items():
        if who != "deployer":
            assert {r for r in held if _is_admin(r)} == set(), who
    # Each admin role is one the deployer needs and is granted as listed, nowhere else.
    admin = {
        "roles/cloudscheduler.admin",  # project: no narrower role creates triggers
        "roles/pubsub.admin",  # project: the grants on topics and subscription
        "roles/storage.objectAdmin",  # state bucket: the platform's prefix only
    }
    assert {r for r in granted["deployer"] if _is_admin(r)} == admin
    assert {r for r in roles if _is_admin(r)} == admin


def test_the_deployer_reaches_only_the_platform_state() -> None:
    (state,) = [
        body
        for kind, label, body in _resources(BOOT)
        if kind == "google_storage_bucket_iam_member" and label == "deployer_state"
    ]
    assert state["bucket"] == "${var.state_bucket}"
    assert state["role"] == "roles/storage.objectAdmin"
    (condition,) = state["condition"]
    assert condition["expression"] == (
        "resource.type == 'storage.googleapis.com/Bucket' || resource.name.startsWith("
        "'projects/_/buckets/${var.state_bucket}/objects/${local.platform_state_prefix}/')"
    )


_SECRETS = {
    "service account key resource": re.compile(r"google_service_account_key"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\"private_key(_id)?\""),
    "key file": re.compile(r"(?<![\w-])credentials(_json|_file)?\s*[:=]"),
    "key in a secret": re.compile(r"secrets\.\w*(KEY|CREDENTIALS|JSON)\b"),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
}


def test_the_deployer_comes_from_github_by_federation_and_no_key_exists() -> None:
    kinds = {kind for config in CONFIGS.values() for kind, _, _ in _resources(config)}
    assert {
        "google_iam_workload_identity_pool",
        "google_iam_workload_identity_pool_provider",
    } <= kinds
    assert "google_service_account_key" not in kinds
    files = [p for d in (INFRA, ROOT / ".github") for p in d.rglob("*") if p.is_file()]
    assert any(p.suffix == ".tf" for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        for what, pattern in _SECRETS.items():
            assert not pattern.search(text), f"{what} in {path.relative_to(ROOT)}"


def test_the_image_repository_is_code() -> None:
    (repo,) = [
        body for kind, _, body in _resources(BOOT) if kind == "google_artifact_registry_repository"
    ]
    assert repo["repository_id"] == "ey"
    assert repo["format"] == "DOCKER"
    assert repo["docker_config"] == [{"immutable_tags": True}]


@needs_terraform
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
    paths = list(TF.rglob("*.tf"))
    assert BOOT / "deployer.tf" in paths
    for path in paths:
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV_\w+:\S.{20,}", line), line


# Monitoring (monitoring.tf) and the budget (bootstrap/budget.tf).
MONITORING = TF / "monitoring.tf"
SRC = ROOT / "src" / "ey_platform"
_LOG_METHODS = {"debug", "info", "warning", "error", "critical", "exception"}
# Fields every JSON log line carries besides the record's own: logs.py adds them from the
# job context (ops/context.py).
_CONTEXT_FIELDS = {"job", "run_id"}


def _logged_events() -> dict[str, set[str]]:
    """Each event the package logs (a logging call whose message is a string literal) and
    the `extra` fields its calls pass."""
    import ast

    events: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            first = node.args[0]
            methods = {n.attr for n in ast.walk(node.func) if isinstance(n, ast.Attribute)}
            if not (methods & _LOG_METHODS and isinstance(first, ast.Constant)):
                continue
            if not isinstance(first.value, str):
                continue
            fields = events.setdefault(first.value, set())
            for keyword in node.keywords:
                if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                    fields |= {k.value for k in keyword.value.keys if isinstance(k, ast.Constant)}
    return events


def _code_strings() -> set[str]:
    """Every string constant of the package's code, docstrings left out."""
    import ast

    found: set[str] = set()
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
        }
        found |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        }
    return found


def _unquoted(text: str) -> str:
    """An HCL string as python-hcl2 returns it, with its escaped quotes as Terraform reads them."""
    return text.replace('\\"', '"')


def _monitoring_locals(work: Path, expression: str) -> Any:
    """``expression`` evaluated by terraform over the variables and monitoring.tf's locals
    that need no provider (the metrics' and the dashboard's), with run.tf's job and worker
    names."""
    blocks = [
        block
        for block in re.findall(r"(?ms)^locals \{\n.*?^\}\n", MONITORING.read_text())
        if re.search(r"^  (platform_logs|dashboard_sections) = ", block, re.M)
    ]
    assert len(blocks) == 2, "monitoring.tf: the metrics' or the dashboard's locals not found"
    run = _locals(TF / "run.tf")
    names = {
        key: ", ".join(f"{name} = {{}}" for name in run[key]) for key in ("run_jobs", "workers")
    }
    stub = "".join(f"  {key} = {{ {value} }}\n" for key, value in names.items())
    (work / "monitoring.tf").write_text("".join(blocks) + "locals {\n" + stub + "}\n")
    done = _terraform(
        work,
        "console",
        f"-var-file={TF / 'envs' / 'dev.tfvars'}",
        f"-var=image={DIGEST}",
        *_filled(TF, "dev"),
        stdin=f"jsonencode({expression})\n",
    )
    assert done.returncode == 0, done.stderr
    return orjson.loads(orjson.loads(done.stdout.strip()))


def test_log_metrics_count_only_events_the_code_logs() -> None:
    metrics = _locals(MONITORING)["log_metrics"]
    logged = _logged_events()
    assert {"job.failed", "batch.held", "quality.failed", "batch.load"} <= logged.keys(), (
        "the parsing of the package's log calls is wrong"
    )
    assert {m["event"] for m in metrics.values()} == {
        "job.failed",
        "batch.held",
        "quality.failed",
        "batch.load",
    }
    for name, metric in metrics.items():
        assert metric["event"] in logged, f"{name}: no code logs {metric['event']!r}"
        fields = logged[metric["event"]] | _CONTEXT_FIELDS
        assert set(metric["labels"]) <= fields, f"{name}: a label no {metric['event']} carries"
        if metric["value"] is not None:
            assert metric["value"] in logged[metric["event"]], name
    assert metrics["job_failures"]["labels"].keys() == {"job"}
    assert metrics["batches_held"]["labels"].keys() == {"entity"}
    assert metrics["quality_failures"]["labels"].keys() >= {"check_name", "entity"}
    assert metrics["rows_loaded"]["value"] == "rows"
    # Freshness is the quality check of that name (contract: check_name = "freshness").
    assert _unquoted(metrics["stale_sources"]["also"]) == 'jsonPayload.check_name="freshness"'
    assert "freshness" in _code_strings(), "no code records a check named freshness"
    (metric,) = [body for kind, _, body in _resources(TF) if kind == "google_logging_metric"]
    assert metric["for_each"] == "${local.log_metrics}"
    assert metric["name"] == "ey_${each.key}"
    filter_ = _unquoted(metric["filter"])
    assert '"(${local.platform_logs})"' in filter_
    assert 'jsonPayload.message="${each.value.event}"' in filter_
    assert metric["label_extractors"] == (
        '${{for key in keys(each.value.labels) : key => "EXTRACT(jsonPayload.${key})"}}'
    )


@needs_terraform
def test_log_metrics_read_only_the_platforms_cloud_run_logs(tmp_path: Path) -> None:
    found = _monitoring_locals(
        Offline(tmp_path)["platform"],
        "{ logs = local.platform_logs, types = local.metric_types }",
    )
    assert found["logs"] == (
        '(resource.type="cloud_run_job" AND resource.labels.job_name=("ey-batch" OR '
        '"ey-transform")) OR (resource.type="cloud_run_worker_pool" AND '
        'resource.labels.worker_pool_name=("ey-consumer" OR "ey-poller"))'
    )
    assert found["types"]["job_failures"] == "logging.googleapis.com/user/ey_job_failures"


_POLICIES = {
    "job_failed",
    "job_execution_failed",
    "batch_held",
    "quality_failed",
    "source_stale",
    "backlog",
    "dead_letters",
}


def test_every_alert_policy_notifies_the_channels_and_says_what_to_do() -> None:
    resources = {(kind, label): body for kind, label, body in _resources(TF)}
    (policy,) = [body for (kind, _), body in resources.items() if kind.endswith("alert_policy")]
    assert policy["for_each"] == "${local.alert_policies}"
    assert policy["notification_channels"] == "${local.notification_channels}"
    assert policy["documentation"] == [
        {
            "subject": "${each.value.subject}",
            "mime_type": "text/markdown",
            "content": "${each.value.runbook}",
        }
    ]
    assert policy["depends_on"] == ["${google_logging_metric.event}"]
    local = _locals(MONITORING)
    assert local["notification_channels"].replace(" ", "").replace("\n", "") == (
        "${concat([forchannelingoogle_monitoring_notification_channel.email:channel.name],"
        "google_monitoring_notification_channel.webhook[*].name)}"
    )
    email = resources[("google_monitoring_notification_channel", "email")]
    assert (email["type"], email["for_each"]) == ("email", "${toset(var.alert_emails)}")
    webhook = resources[("google_monitoring_notification_channel", "webhook")]
    assert webhook["type"] == "webhook_tokenauth"
    assert webhook["count"] == "${nonsensitive(var.alert_webhook_url == null) ? 0 : 1}"
    assert _variables(TF)["alert_webhook_url"]["sensitive"] is True
    policies = local["alert_policies"]
    assert set(policies) == _POLICIES
    for name, spec in policies.items():
        assert spec["severity"] in {"CRITICAL", "ERROR", "WARNING"}, name
        assert spec["subject"].startswith("[${var.environment}] "), name
        assert re.search(r"`ey-platform (health|stream status|batch)", spec["runbook"]), name
        assert spec["conditions"], name
        for condition in spec["conditions"]:
            assert _unquoted(condition["filter"]).startswith('metric.type="'), name
    # Each log-based metric but the rows' (a dashboard figure) is alerted on.
    filters = {
        name: _unquoted(c["filter"]) for name, s in policies.items() for c in s["conditions"]
    }
    for metric in ("job_failures", "batches_held", "quality_failures", "stale_sources"):
        assert any(f"${{local.metric_types.{metric}}}" in f for f in filters.values()), metric
    assert 'NOT metric.labels.check_name="freshness"' in filters["quality_failed"]
    assert (
        "ey-platform batch --date DAY --entity $${metric.label.entity} --force"
        in (policies["batch_held"]["runbook"])
    )


def test_a_stale_source_pages_only_on_fail_and_a_warn_stays_on_the_dashboard() -> None:
    from typing import get_args

    from ey_platform.ops.freshness import freshness_limits
    from ey_platform.warehouse.base import QualityStatus

    # carts_events, a stream that lands changes only, has no error limit: it only warns.
    assert freshness_limits()["carts_events"][1] is None
    assert {"warn", "fail"} <= set(get_args(QualityStatus))
    local = _locals(MONITORING)
    stale = local["log_metrics"]["stale_sources"]
    # The metric counts both statuses, with the status as a label.
    assert "status" in stale["labels"]
    assert "status" not in _unquoted(stale["also"])
    (condition,) = local["alert_policies"]["source_stale"]["conditions"]
    assert _unquoted(condition["filter"]) == (
        'metric.type="${local.metric_types.stale_sources}" AND metric.labels.status="fail"'
    )
    # No other policy reads freshness: quality_failed leaves it out.
    for name, policy in local["alert_policies"].items():
        for other in policy["conditions"]:
            text = _unquoted(other["filter"])
            if name != "source_stale":
                assert "stale_sources" not in text, name
                if "quality_failures" in text:
                    assert 'NOT metric.labels.check_name="freshness"' in text, name
    # The dashboard charts every status of it, by status.
    (chart,) = [
        c
        for section in local["dashboard_sections"]
        for c in section["charts"]
        if "stale_sources" in str(c)
    ]
    (data,) = chart["xyChart"]["dataSets"]
    series = data["timeSeriesQuery"]["timeSeriesFilter"]
    assert _unquoted(series["filter"]) == 'metric.type="${local.metric_types.stale_sources}"'
    assert "metric.label.status" in series["aggregation"]["groupByFields"]


def test_the_cloud_run_backlog_and_dead_letter_policies_watch_the_platforms_resources() -> None:
    policies = _locals(MONITORING)["alert_policies"]
    (jobs,) = policies["job_execution_failed"]["conditions"]
    assert _unquoted(jobs["filter"]).startswith(
        'metric.type="run.googleapis.com/job/completed_execution_count" AND '
        'resource.type="cloud_run_job" AND metric.labels.result="failed" AND '
        'resource.labels.job_name=one_of(${join(", ", [for job in google_cloud_run_v2_job.job'
    )
    (backlog,) = policies["backlog"]["conditions"]
    assert "/subscription/oldest_unacked_message_age" in backlog["filter"]
    assert "${google_pubsub_subscription.events.name}" in backlog["filter"]
    assert (backlog["aligner"], backlog["above"]) == (
        "ALIGN_MAX",
        "${var.alert_backlog_age_minutes * 60}",  # the variable is in minutes, the metric in s
    )
    forwarded, waiting = policies["dead_letters"]["conditions"]
    assert "/subscription/dead_letter_message_count" in forwarded["filter"]
    assert "${google_pubsub_subscription.events.name}" in forwarded["filter"]
    assert "/subscription/num_undelivered_messages" in waiting["filter"]
    assert "${google_pubsub_subscription.dead_letters.name}" in waiting["filter"]
    # A state is announced when it ends as well; a discrete event only when it happens.
    for name in ("backlog", "dead_letters", "source_stale"):
        assert policies[name]["prompts"] == ["OPENED", "CLOSED"], name
    for name in ("job_failed", "job_execution_failed", "batch_held", "quality_failed"):
        assert policies[name]["prompts"] == ["OPENED"], name


@needs_terraform
def test_the_dashboard_json_is_valid_and_has_the_four_sections(tmp_path: Path) -> None:
    (board,) = [body for kind, _, body in _resources(TF) if kind == "google_monitoring_dashboard"]
    assert board["dashboard_json"] == "${jsonencode(local.dashboard)}"
    dashboard = _monitoring_locals(Offline(tmp_path)["platform"], "local.dashboard")
    layout = dashboard["mosaicLayout"]
    tiles = sorted(layout["tiles"], key=lambda t: (t["yPos"], t["xPos"]))
    headers = [t for t in tiles if "sectionHeader" in t["widget"]]
    assert [t["widget"]["title"] for t in headers] == [
        "Jobs",
        "Backlog",
        "Rows loaded",
        "Freshness",
    ]
    cells = set()
    for tile in tiles:
        assert tile["xPos"] + tile["width"] <= layout["columns"] == 48
        area = {
            (x, y)
            for x in range(tile["xPos"], tile["xPos"] + tile["width"])
            for y in range(tile["yPos"], tile["yPos"] + tile["height"])
        }
        assert not area & cells, f"{tile['widget']['title']} overlaps another tile"
        cells |= area
    starts = [t["yPos"] for t in headers] + [max(t["yPos"] + t["height"] for t in tiles)]
    charts = {
        header["widget"]["title"]: [
            t["widget"] for t in tiles if "xyChart" in t["widget"] and start < t["yPos"] < end
        ]
        for header, start, end in zip(headers, starts, starts[1:], strict=False)
    }
    assert all(len(found) >= 2 for found in charts.values()), charts.keys()
    queries = {
        section: [d["timeSeriesQuery"] for chart in found for d in chart["xyChart"]["dataSets"]]
        for section, found in charts.items()
    }
    text = orjson.dumps(queries).decode()
    assert "run.googleapis.com/job/completed_execution_count" in str(queries["Jobs"])
    assert "oldest_unacked_message_age" in str(queries["Backlog"])
    assert "user_ey_rows_loaded_sum" in str(queries["Rows loaded"])
    assert "ey_stale_sources" in str(queries["Freshness"])
    used = set(re.findall(r"logging\.googleapis\.com/user/(\w+)", text))
    used |= set(re.findall(r"logging_googleapis_com:user_(\w+?)_(?:sum|count)\b", text))
    assert used and used <= {f"ey_{name}" for name in _locals(MONITORING)["log_metrics"]}
    (age,) = charts["Backlog"][0]["xyChart"]["thresholds"]
    assert age["value"] == _defaults(TF)["alert_backlog_age_minutes"] * 60
    # The dead letters charted are those of the subscription pubsub.tf creates.
    dead = [b for k, label, b in _resources(TF) if k == "google_pubsub_subscription"]
    assert {b["name"] for b in dead} == {"${var.subscription}", "${var.dead_letter_topic}-sub"}
    assert 'subscription_id=\\"carts-events-dlq-sub\\"' in text


def test_the_budget_is_the_owners_and_notifies_at_its_thresholds() -> None:
    # Creating a budget takes a role on the billing account: the owner applies it with
    # bootstrap/, and the platform, which the CI deployer applies, has none.
    assert [k for config in CONFIGS.values() for k, _, _ in _resources(config)].count(
        "google_billing_budget"
    ) == 1
    assert not (TF / "budget.tf").exists()
    assert {"billing_account", "monthly_budget"} & _variables(TF).keys() == set()
    resources = {(kind, label): body for kind, label, body in _resources(BOOT)}
    budget = resources[("google_billing_budget", "monthly")]
    assert budget["count"] == '${var.billing_account == "" ? 0 : 1}'  # no account, no budget
    assert budget["billing_account"] == "${var.billing_account}"
    assert budget["budget_filter"] == [
        {
            "projects": ["projects/${data.google_project.this.number}"],
            "calendar_period": "MONTH",
            "credit_types_treatment": "INCLUDE_ALL_CREDITS",
        }
    ]
    assert budget["amount"] == [
        {"specified_amount": [{"units": "${tostring(var.monthly_budget)}"}]}
    ]
    thresholds = _locals(BOOT / "budget.tf")["budget_thresholds"]
    assert [(t["percent"], t["basis"]) for t in thresholds] == [
        (0.5, "CURRENT_SPEND"),
        (0.9, "CURRENT_SPEND"),
        (1.0, "CURRENT_SPEND"),
        (1.0, "FORECASTED_SPEND"),
    ]
    (dynamic,) = budget["dynamic"]
    assert dynamic["threshold_rules"]["for_each"] == "${local.budget_thresholds}"
    # The billing account's administrators and the project's owners, and the budget's
    # own email channels, which exist only with the budget.
    (rule,) = budget["all_updates_rule"]
    assert rule["disable_default_iam_recipients"] is False
    assert rule["enable_project_level_recipients"] is True
    assert rule["monitoring_notification_channels"] == (
        "${[for channel in google_monitoring_notification_channel.budget : channel.name]}"
    )
    email = resources[("google_monitoring_notification_channel", "budget")]
    assert email["type"] == "email"
    assert email["for_each"] == (
        '${var.billing_account == "" ? toset([]) : toset(var.budget_emails)}'
    )
    # The Budget API takes a quota project with the owner's user credentials.
    assert budget["provider"] == "${google.billing}"
    providers = [p["google"] for p in _load(BOOT / "versions.tf")["provider"]]
    (billing,) = [p for p in providers if p.get("alias") == "billing"]
    assert billing["billing_project"] == "${var.project}"
    assert billing["user_project_override"] is True
    # Only prod names a billing account, as a placeholder to replace; elsewhere no budget.
    assert _tfvars(BOOT, "prod")["billing_account"].startswith("REPLACE-ME")
    assert "billing_account" not in _tfvars(BOOT, "dev")
    assert _defaults(BOOT)["billing_account"] == ""
    assert all("billing_account" not in _tfvars(TF, env) for env in ENVS)


@needs_terraform
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ('-var=alert_emails=["oncall"]', "alert_emails must be email addresses"),
        ("-var=alert_webhook_url=http://hooks.example.com/x", "must start with https://"),
        ("-var=alert_backlog_age_minutes=0", "alert_backlog_age_minutes must be a positive"),
    ],
)
def test_terraform_refuses_bad_monitoring_values(
    offline: Offline, option: str, message: str
) -> None:
    done = _plan(offline["platform"], TF, "dev", *_filled(TF, "dev"), option)
    assert done.returncode != 0, option
    assert message in " ".join(done.stderr.split()), done.stderr


@needs_terraform
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("-var=billing_account=0123-4567", "billing_account must be a billing account id"),
        ("-var=monthly_budget=0", "monthly_budget must be a whole number above 0"),
        ("-var=monthly_budget=99.5", "monthly_budget must be a whole number above 0"),
        ('-var=budget_emails=["finance"]', "budget_emails must be at most 5 email addresses"),
        (
            "-var=budget_emails=" + orjson.dumps([f"f{i}@example.com" for i in range(6)]).decode(),
            "budget_emails must be at most 5 email addresses",
        ),
    ],
)
def test_terraform_refuses_bad_budget_values(offline: Offline, option: str, message: str) -> None:
    done = _plan(offline["bootstrap"], BOOT, "prod", *_filled(BOOT, "prod"), option)
    assert done.returncode != 0, option
    assert message in " ".join(done.stderr.split()), done.stderr


@needs_terraform
def test_terraform_accepts_the_monitoring_and_budget_values_it_documents(
    offline: Offline,
) -> None:
    done = _plan(
        offline["platform"],
        TF,
        "dev",
        *_filled(TF, "dev"),
        '-var=alert_emails=["data-oncall@example.com"]',
        "-var=alert_webhook_url=https://hooks.example.com/monitoring",
        "-var=alert_backlog_age_minutes=30",
    )
    assert done.returncode == 0, done.stderr
    done = _plan(
        offline["bootstrap"],
        BOOT,
        "dev",
        *_filled(BOOT, "dev"),
        "-var=billing_account=0A1B2C-3D4E5F-60718A",
        "-var=monthly_budget=300",
        "-var=budget_emails=" + orjson.dumps([f"f{i}@example.com" for i in range(5)]).decode(),
    )
    assert done.returncode == 0, done.stderr
