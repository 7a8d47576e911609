"""Cost guardrails on BigQuery, without a BigQuery: the labels (app, env, job) and the
byte limit the platform's jobs carry, and what dbt's renderer makes of profiles.yml and
of the query comment that labels dbt's jobs. (tests/contract/test_bigquery_jobs.py runs
the jobs on the emulator.)"""

from __future__ import annotations

import contextvars
import os
from argparse import Namespace
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.cloud import bigquery

from ey_platform.gcp import bigquery_client, label_value, with_job_label
from ey_platform.ops.context import job_context
from ey_platform.settings import Settings
from ey_platform.transform import DBT_PROJECT

LIMIT = 3 << 30


def _client(environment: str = "staging") -> bigquery.Client:
    # An emulator endpoint makes the client anonymous; nothing is reached by building it.
    return bigquery_client(
        Settings(
            profile="gcp",
            environment=environment,
            gcp={"project": "p", "bigquery_endpoint": "http://127.0.0.1:9"},
            warehouse={"bigquery": {"maximum_bytes_billed": LIMIT}},
        )
    )


def test_the_client_labels_every_job_and_limits_every_query() -> None:
    client = _client()
    labels = {"app": "ey-platform", "env": "staging", "job": "adhoc"}
    query, load = client.default_query_job_config, client.default_load_job_config
    assert query is not None and load is not None
    assert query.labels == labels and query.maximum_bytes_billed == LIMIT
    assert load.labels == labels


def test_the_default_limit_is_20_gib() -> None:
    client = bigquery_client(
        Settings(profile="gcp", gcp={"project": "p", "bigquery_endpoint": "http://127.0.0.1:9"})
    )
    assert client.default_query_job_config is not None
    assert client.default_query_job_config.maximum_bytes_billed == 20 * 2**30
    assert client.default_query_job_config.labels["env"] == "local"


@pytest.mark.parametrize(
    ("text", "label"),
    [("batch", "batch"), (" Up Now ", "up_now"), ("dev.eu/1", "dev_eu_1"), ("x" * 70, "x" * 63)],
)
def test_label_values_follow_bigquery_rules(text: str, label: str) -> None:
    assert label_value(text) == label


def test_each_job_gets_the_label_of_the_job_running_then() -> None:
    # One client serves every job of `up`: the job label is taken per call.
    client = _client()
    with job_context("batch"):
        batch = with_job_label(client, bigquery.LoadJobConfig())
    with job_context("poll"):
        poll = with_job_label(client, bigquery.QueryJobConfig(query_parameters=[]))
    adhoc = with_job_label(client, bigquery.QueryJobConfig())
    assert batch.labels == {"app": "ey-platform", "env": "staging", "job": "batch"}
    assert poll.labels == {"app": "ey-platform", "env": "staging", "job": "poll"}
    assert adhoc.labels["job"] == "adhoc"
    assert client.default_query_job_config is not None
    assert client.default_query_job_config.labels["job"] == "adhoc"  # defaults untouched


def test_the_merged_config_keeps_the_limit_and_the_job_label() -> None:
    # How google-cloud-bigquery fills a job's config from the client's default (what
    # Client.query does before it sends the job): the limit comes from the default,
    # the labels as a whole from the job's own config.
    client = _client()
    with job_context("transform"):
        config = with_job_label(client, bigquery.QueryJobConfig(use_query_cache=False))
    sent = config._fill_from_default(client.default_query_job_config)
    assert sent.maximum_bytes_billed == LIMIT and sent.use_query_cache is False
    assert sent.labels == {"app": "ey-platform", "env": "staging", "job": "transform"}
    # Why with_job_label merges: labels of the job's own replace the default's.
    bare = bigquery.QueryJobConfig(labels={"job": "x"})
    assert bare._fill_from_default(client.default_query_job_config).labels == {"job": "x"}


def _render_dbt(environ: dict[str, str], node: Any = None) -> tuple[Any, dict[str, str]]:
    """The bigquery target's credentials as dbt renders profiles.yml, and the labels
    dbt-bigquery derives from the rendered query comment, with ``environ`` as the
    environment."""
    from dbt.adapters.factory import get_adapter, register_adapter, reset_adapters
    from dbt.config.runtime import RuntimeConfig, load_profile, load_project
    from dbt.context.query_header import generate_query_header_context
    from dbt.contracts.graph.manifest import Manifest
    from dbt.flags import set_from_args
    from dbt.mp_context import get_mp_context
    from dbt_common.context import set_invocation_context

    root = str(DBT_PROJECT)
    set_invocation_context(environ)
    args = Namespace(PROFILES_DIR=root, PROJECT_DIR=root, vars={}, profile=None, target=None)
    set_from_args(args, None)
    profile = load_profile(root, {})
    config = RuntimeConfig.from_parts(load_project(root, False, profile, {}), profile, args)
    register_adapter(config, get_mp_context())
    try:
        connections = get_adapter(config).connections
        connections.set_query_header(generate_query_header_context(config, Manifest()))
        if node is not None:
            connections.query_header.set(node.unique_id, node)
        return profile.credentials, connections.get_labels_from_query_comment()
    finally:
        reset_adapters()


@pytest.mark.parametrize("target", ["gcp", "gcp_emulator"])
def test_dbt_on_bigquery_has_the_byte_limit_and_the_labels(target: str) -> None:
    pytest.importorskip("dbt.adapters.bigquery")
    environ = {
        **os.environ,
        "EYP_DBT_TARGET": target,
        "EYP_GCP__PROJECT": "p",
        "EYP_GCP__BIGQUERY_ENDPOINT": "http://127.0.0.1:9",
        "EYP_ENVIRONMENT": "prod",
        "EYP_WAREHOUSE__BIGQUERY__MAXIMUM_BYTES_BILLED": str(LIMIT),
    }
    model = SimpleNamespace(unique_id="model.ey_data_platform.fact_orders")
    # dbt's invocation context is a context variable: kept out of the other tests.
    credentials, labels = contextvars.copy_context().run(_render_dbt, environ, model)
    assert credentials.maximum_bytes_billed == LIMIT
    assert labels == {
        "app": "ey-platform",
        "env": "prod",
        "job": "transform",
        "dbt_node": "model_ey_data_platform_fact_orders",
    }


def test_dbt_without_the_variables_falls_back_to_the_defaults() -> None:
    pytest.importorskip("dbt.adapters.bigquery")
    environ = {**os.environ, "EYP_DBT_TARGET": "gcp", "EYP_GCP__PROJECT": "p"}
    credentials, labels = contextvars.copy_context().run(_render_dbt, environ)
    assert credentials.maximum_bytes_billed == 20 * 2**30
    assert labels["env"] == "local" and labels["job"] == "transform"
    assert labels["dbt_node"] == "master"  # dbt's own queries outside any node
