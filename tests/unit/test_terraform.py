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


def _filled(config: Path, env: str) -> list[str]:
    """-var options that replace the tfvars' REPLACE-ME placeholders by valid values."""
    return [
        f"-var={key}={value.replace('REPLACE-ME', 'example-org').lower()}"
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
            "cloudresourcemanager",
            "cloudscheduler",
            "iam",
            "iamcredentials",
            "logging",
            "monitoring",
            "pubsub",
            "run",
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
    for key in names:
        monkeypatch.setenv(key, "1" if key.endswith(("DEADLINE", "ATTEMPTS")) else "x")
    monkeypatch.setenv("EYP_API_URL", "https://fakestoreapi.com")
    monkeypatch.setenv("EYP_PROFILE", "gcp")
    assert load_settings().profile == "gcp"
    assert unknown_variables(dict.fromkeys(names, "x")) == []  # every name is a setting


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
    assert accounts == {"ey-${each.key}", "ey-deployer"}
    identities = _all_locals(BOOT)["identities"]
    assert set(identities) == set(_GRANTS) - {"deployer"}
    # The platform names the same accounts the bootstrap creates.
    assert _locals(TF / "main.tf")["identities"] == '${toset(["' + '", "'.join(identities) + '"])}'


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
