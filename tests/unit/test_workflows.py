"""The delivery path, checked offline: the GitHub workflows (they parse, pin their
actions, hold no key, and deploy.yml promotes one digest dev -> staging -> prod through
GitHub Environments with Workload Identity Federation), jactionlint on them in
`make lint`, and scripts/deploy.sh, which the workflow and `make rollback` both run, in
its dry run (it prints the terraform, gcloud and bq commands and calls none)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

hcl2 = pytest.importorskip("hcl2")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY = ROOT / "scripts" / "deploy.sh"
TF = ROOT / "infra" / "terraform"
JACTIONLINT = ROOT / ".tools" / "lint" / "bin" / "jactionlint"
IN_CI = os.environ.get("CI") == "true"
DIGEST = "sha256:" + "0123456789abcdef" * 4
ENVIRONMENTS = ("dev", "staging", "prod")
# What a key or a long-lived secret looks like in a workflow or a script.
SECRET_SIGNS = (
    re.compile(r"credentials_json"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"GOOGLE_APPLICATION_CREDENTIALS"),
    re.compile(r"\"type\"\s*:\s*\"service_account\""),
    re.compile(r"private_key(_id)?"),
    re.compile(r"\bsecrets\.(?!GITHUB_TOKEN\b)\w+"),
)


def _workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as true.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict)
    return triggers


def _runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]


def test_the_workflows_parse_and_pin_every_action_by_commit() -> None:
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == ["ci.yml", "deploy.yml"]
    for name in names:
        workflow = _workflow(name)
        assert workflow["permissions"] == {"contents": "read"}, name
        for job_name, job in workflow["jobs"].items():
            assert "timeout-minutes" in job, f"{name}: {job_name}"
            extra = {k: v for k, v in job.get("permissions", {}).items() if k != "contents"}
            assert extra in ({}, {"id-token": "write"}), f"{name}: {job_name}: {extra}"
        for line in (WORKFLOWS / name).read_text().splitlines():
            if found := re.search(r"uses: (\S+)", line):
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", found[1]), line
                assert re.search(r"# v\d+\.\d+\.\d+$", line), f"no tag beside: {line}"


def test_ci_runs_make_lint_and_make_test_on_3_11_and_3_13_and_dbt_parse() -> None:
    workflow = _workflow("ci.yml")
    assert set(_triggers(workflow)) == {"pull_request", "push"}
    lint, test = workflow["jobs"]["lint"], workflow["jobs"]["test"]
    assert _runs(lint) == ["make lint", "make dbt-parse"]
    assert [m["python"] for m in test["strategy"]["matrix"]["include"]] == ["3.11", "3.13"]
    [make_test] = [run for run in _runs(test) if "make test" in run]
    assert make_test.endswith('make test PYTHON="$PYTHON" VENV="$VENV"')
    assert test["env"]["EYP_REQUIRE_EMULATORS"] == "1"
    uses = {step["uses"].split("@")[0] for step in test["steps"] if "uses" in step}
    assert {"actions/setup-java", "hashicorp/setup-terraform"} <= uses


def test_deploy_promotes_one_digest_dev_then_staging_then_prod() -> None:
    workflow = _workflow("deploy.yml")
    triggers = _triggers(workflow)
    assert triggers["push"] == {"branches": ["main"]}
    assert "digest" in triggers["workflow_dispatch"]["inputs"]
    jobs = workflow["jobs"]
    assert "permissions" not in jobs["build"]  # no Google Cloud access
    previous = "build"
    for env in ENVIRONMENTS:
        job = jobs[env]
        assert job["environment"] == env
        needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
        assert sorted(needs) == sorted({"build", previous}), env
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert job["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
        [auth] = [
            s
            for s in job["steps"]
            if s.get("uses", "").startswith("google-github-") and "auth@" in s["uses"]
        ]
        assert auth["with"] == {
            "workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
            "service_account": "${{ vars.GCP_DEPLOYER }}",
        }
        steps = [run.split(f'{env} "$DIGEST" ')[-1] for run in _runs(job) if "deploy.sh" in run]
        expected = ["push", "apply", "smoke"]
        if env == "prod":  # dbt against prod's manifest before, the new manifest after
            expected = ["dbt-check", *expected, "publish-manifest"]
        assert steps == expected, env
        previous = env


def _secret_signs(text: str) -> list[str]:
    return [found[0] for sign in SECRET_SIGNS for found in sign.finditer(text)]


def test_no_workflow_or_script_holds_a_key_or_a_long_lived_secret() -> None:
    files = [*(ROOT / ".github").rglob("*.yml"), DEPLOY, ROOT / "Makefile", ROOT / "Dockerfile"]
    assert len(files) >= 6
    for path in files:
        assert _secret_signs(path.read_text()) == [], path
    # The check knows one when it sees one.
    leaked = "with:\n  credentials_json: ${{ secrets.GCP_SA_KEY }}\n"
    assert _secret_signs(leaked) == ["credentials_json", "secrets.GCP_SA_KEY"]


def _jactionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    if not JACTIONLINT.exists():
        if IN_CI:
            pytest.fail(f"no jactionlint at {JACTIONLINT}: make test installs it")
        pytest.skip(f"no jactionlint at {JACTIONLINT} (make lint installs it)")
    shellcheck = JACTIONLINT.with_name("shellcheck")
    return subprocess.run(
        [
            str(JACTIONLINT),
            "--no-online",
            "--no-color",
            f"--shellcheck={shellcheck if shellcheck.exists() else ''}",
            "--pyflakes=",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_lint_runs_jactionlint_which_passes_ours_and_fails_a_broken_copy(
    tmp_path: Path,
) -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") : makefile.index("\nformat:")]
    assert re.search(r"jactionlint .*\\\n\s+\.github/workflows/\*\.yml", lint)
    ours = _jactionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert ours.returncode == 0, ours.stdout + ours.stderr
    broken = tmp_path / ".github" / "workflows" / "deploy.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "needs: [build, staging]" in text
    broken.write_text(text.replace("needs: [build, staging]", "needs: [build, stagin]"))
    done = _jactionlint(broken)
    assert done.returncode == 1
    assert 'job "prod" needs job "stagin" which does not exist' in done.stdout


@pytest.fixture
def tripwire(tmp_path: Path) -> Path:
    """A PATH entry whose terraform, gcloud, bq, skopeo and dbt only leave a mark: a dry
    run that called one would show."""
    bin_dir, marks = tmp_path / "bin", tmp_path / "called"
    bin_dir.mkdir()
    for tool in ("terraform", "gcloud", "bq", "skopeo", "dbt"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho {tool} "$@" >> {marks}\nexit 1\n')
        script.chmod(0o755)
    return marks


def _deploy(*args: str, tripwire: Path, make: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{tripwire.parent / 'bin'}:{os.environ['PATH']}"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    command = ["make", "--no-print-directory", "-s", *args] if make else [str(DEPLOY), *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert not tripwire.exists(), f"the dry run called {tripwire.read_text()}"
    return done


@pytest.mark.parametrize(
    "digest",
    [
        "latest",
        "sha256:abc",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 64,
        "europe-west1-docker.pkg.dev/p/ey/ey-platform@sha256:" + "a" * 64,
        "sha256:" + "a" * 63 + ";",
        "",
    ],
)
def test_the_deploy_script_refuses_what_is_not_an_image_digest(digest: str, tripwire: Path) -> None:
    done = _deploy("--dry-run", "prod", digest, tripwire=tripwire)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: DIGEST must be sha256: and 64 lowercase hex digits")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("qa", DIGEST), "error: ENV must be dev, staging or prod, not 'qa'"),
        (("", DIGEST), "error: ENV must be dev, staging or prod, not ''"),
        (("prod",), "error: ENV and DIGEST are required"),
        (("prod", DIGEST, "deploy"), "error: unknown STEP 'deploy'"),
        (("prod", DIGEST, "apply", "push"), "error: STEP push needs --image-archive FILE"),
        (("--force", "prod", DIGEST), "error: unknown option --force"),
    ],
)
def test_the_deploy_script_refuses_other_bad_arguments(
    args: tuple[str, ...], message: str, tripwire: Path
) -> None:
    done = _deploy("--dry-run", *args, tripwire=tripwire)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(message)


def _tfvars(env: str) -> dict[str, Any]:
    with (TF / "envs" / f"{env}.tfvars").open() as handle:
        loaded = hcl2.load(handle)
    return {k: v.strip('"') if isinstance(v, str) else v for k, v in loaded.items()}


def test_make_rollback_plans_and_applies_that_digest_then_runs_the_smoke_checks(
    tripwire: Path,
) -> None:
    done = _deploy(
        "rollback", "ENV=staging", f"DIGEST={DIGEST}", "DRY_RUN=1", tripwire=tripwire, make=True
    )
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    tfvars = _tfvars("staging")
    project, region = tfvars["project"], tfvars.get("region", "europe-west1")
    image = f"{region}-docker.pkg.dev/{project}/ey/ey-platform@{DIGEST}"
    chdir = f"-chdir={TF}"
    init, describe, plan, apply, output, batch, transform, counts = commands
    assert init == [
        "terraform",
        chdir,
        "init",
        "-input=false",
        "-reconfigure",
        "-backend-config=envs/staging.backend.hcl",
    ]
    assert describe[:5] == ["gcloud", "artifacts", "docker", "images", "describe"]
    assert describe[5] == image
    [out] = [arg for arg in plan if arg.startswith("-out=")]
    assert plan == [
        "terraform",
        chdir,
        "plan",
        "-input=false",
        "-var-file=envs/staging.tfvars",
        f"-var=image={image}",
        out,
    ]
    assert apply == ["terraform", chdir, "apply", "-input=false", out.removeprefix("-out=")]
    assert output == ["terraform", chdir, "output", "-json"]
    for command, job in ((batch, "ey-batch"), (transform, "ey-transform")):
        assert command == [
            "gcloud",
            "run",
            "jobs",
            "execute",
            job,
            "--project",
            project,
            "--region",
            region,
            "--wait",
        ]
    assert counts[0] == "bq" and f"--project_id={project}" in counts
    for table in ("bq_raw.products", "bq_raw.users", "bq_analytics.fact_orders"):
        assert f"`{project}.{table}`" in counts[-1]


def test_make_rollback_without_a_digest_fails_before_anything_runs(tripwire: Path) -> None:
    done = _deploy("rollback", "ENV=prod", "DRY_RUN=1", tripwire=tripwire, make=True)
    assert done.returncode != 0
    assert "error: DIGEST must be sha256: and 64 lowercase hex digits" in done.stderr
    assert done.stdout == ""


def test_the_release_pushes_the_archive_and_checks_dbt_against_the_published_manifest(
    tripwire: Path, tmp_path: Path
) -> None:
    archive = str(tmp_path / "ey-platform.oci.tar")
    done = _deploy(
        "--dry-run",
        "--image-archive",
        archive,
        "prod",
        DIGEST,
        "dbt-check",
        "push",
        "publish-manifest",
        tripwire=tripwire,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    commands = [shlex.split(line) for line in lines]
    backend = (TF / "envs" / "prod.backend.hcl").read_text()
    bucket = re.search(r'bucket\s*=\s*"([^"]+)"', backend)
    prefix = re.search(r'prefix\s*=\s*"([^"]+)"', backend)
    assert bucket and prefix
    manifest = f"gs://{bucket[1]}/{prefix[1]}/dbt/manifest.json"
    [fetch] = [c for c in commands if c[:3] == ["gcloud", "storage", "cp"] and c[3] == manifest]
    [build] = [c for c in commands if "build" in c and c[0] == "env"]
    state = build[build.index("--state") + 1]
    assert fetch[4] == f"{state}/manifest.json"
    assert build[build.index("--select") + 1] == "state:modified+" and "--defer" in build
    assert "EYP_WAREHOUSE__ANALYTICS_DATASET=bq_ci" in build  # never prod's marts
    [copy] = [c for c in commands if c[:2] == ["skopeo", "copy"]]
    assert copy[2:4] == ["--preserve-digests", f"oci-archive:{archive}"]
    [parse] = [c for c in commands if "parse" in c and c[0] == "env"]
    assert "EYP_DBT_SCHEMA=bq_ci" in build  # dbt writes to the CI dataset only
    assert "EYP_DBT_SCHEMA=bq_analytics_build" in parse  # where ENV's transform builds
    assert commands[-1][:3] == ["gcloud", "storage", "cp"] and commands[-1][-1] == manifest
    assert lines.index(" ".join(map(shlex.quote, build))) < lines.index(
        " ".join(map(shlex.quote, copy))
    )
