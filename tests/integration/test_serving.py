"""Serving the marts: only a build whose every test passed is published, and BI readers
of the serving file, held open in another process, never block the platform."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pytest

from ey_platform.source.data import Catalog
from ey_platform.source.server import create_app, serve_in_thread
from ey_platform.transform import MARTS
from tests.cli import cli, one_error_line, rows

pytestmark = pytest.mark.slow

DBT = Path(__file__).resolve().parents[2] / "src" / "ey_platform" / "dbt"

# A BI tool in a process of its own: it opens the serving file read-only and keeps it
# open; on each line of stdin it answers from that connection ("count") or from a new one
# ("reopen"), the number of lines in fact_orders.
READER = """
import sys, duckdb
path = sys.argv[1]
con = duckdb.connect(path, read_only=True)
count = "SELECT count(*) FROM bq_analytics.fact_orders"
print(con.execute(count).fetchone()[0], flush=True)
for line in sys.stdin:
    if line.strip() == "reopen":
        con.close()
        con = duckdb.connect(path, read_only=True)
    print(con.execute(count).fetchone()[0], flush=True)
con.close()
"""


class Reader:
    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.first = self._answer()

    def _answer(self) -> int:
        assert self.process.stdout is not None
        return int(self.process.stdout.readline())

    def ask(self, what: str) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def api() -> Iterator[tuple[str, Catalog]]:
    app = create_app(Catalog())
    with serve_in_thread(app) as url:
        yield url, app.state.fakestore.catalog


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A platform whose marts are published, for the tests that only read them: its
    data folder and the API it was fed from."""
    data = tmp_path_factory.mktemp("published") / "data"
    with serve_in_thread(create_app(Catalog())) as url:
        _everything(data, url)
        yield data, url


def _run(data: Path, url: str, *args: str) -> None:
    done = cli(data, url, *args)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"


def _everything(data: Path, url: str) -> None:
    for args in (
        ("batch",),
        ("stream", "poll", "--once"),
        ("stream", "consume", "--drain"),
        ("transform", "--quiet"),
    ):
        _run(data, url, *args)


def test_a_reader_holding_the_serving_file_blocks_nothing_and_sees_the_next_publication(
    tmp_path: Path, api: tuple[str, Catalog]
) -> None:
    url, catalog = api
    data = tmp_path / "data"
    _everything(data, url)
    serving = data / "serving" / "analytics.duckdb"
    reader = Reader(serving)
    try:
        # The hold is real: another process cannot open the file to write it.
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(serving)).close()
        catalog.carts.delete(5)
        _everything(data, url)  # batch, poll, consume and transform, all of them succeed
        (published,) = rows(data, "SELECT count(*) FROM bq_analytics.fact_orders")[0]
        assert published < reader.first  # the deleted cart's lines are gone
        assert reader.ask("count") == reader.first  # the open connection: what it had
        assert reader.ask("reopen") == published  # reconnected: the new publication
    finally:
        reader.close()
    assert reader.process.returncode == 0


def _published(data: Path) -> dict[str, list[tuple[object, ...]]]:
    return {m: rows(data, f"SELECT * FROM bq_analytics.{m} ORDER BY ALL") for m in MARTS}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_build_failing_a_test_publishes_nothing_and_names_the_test(
    tmp_path: Path, api: tuple[str, Catalog]
) -> None:
    url, _ = api
    data = tmp_path / "data"
    _everything(data, url)
    serving = data / "serving" / "analytics.duckdb"
    before, served = _published(data), _digest(serving)
    # A bad row in the build schema: a product at a negative price in the snapshot, which
    # the build keeps from run to run. dim_products takes it; its price test fails.
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        con.execute(
            "INSERT INTO bq_analytics_build.products_snapshot "
            "SELECT * REPLACE (999 AS product_id, -1 AS price, 'bad' AS dbt_scd_id) "
            "FROM bq_analytics_build.products_snapshot LIMIT 1"
        )
    failed = cli(data, url, "transform", "--quiet")
    line = one_error_line(failed)
    assert "at_least_dim_products_price" in line, line
    assert "nothing published" in line
    assert _published(data) == before
    assert _digest(serving) == served  # byte for byte
    open_incidents = "SELECT count(*) FROM bq_raw._incidents WHERE resolved_at IS NULL"
    (incidents,) = rows(data, f"{open_incidents} AND job = 'transform'")[0]
    assert incidents == 1  # and it is alerted


def test_query_reads_the_published_marts_in_each_format(published: tuple[Path, str]) -> None:
    data, url = published
    sql = "SELECT sum(line_amount) AS revenue, sum(quantity) AS items FROM fact_orders"
    ((revenue, items),) = rows(data, sql.replace("fact_orders", "bq_analytics.fact_orders"))
    as_json = cli(data, url, "query", sql, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert orjson.loads(as_json.stdout) == [{"revenue": float(revenue), "items": items}]
    as_csv = cli(data, url, "query", sql, "--format", "csv")
    assert as_csv.stdout.splitlines() == ["revenue,items", f"{revenue},{items}"]
    as_table = cli(data, url, "query", sql)
    assert f"{revenue}" in as_table.stdout and "1 row" in as_table.stdout
    # Values JSON has no type for are text; a statement too long for sqlparse still runs.
    odd = cli(data, url, "query", "SELECT INTERVAL 1 DAY AS d, 'ab'::BLOB AS b", "--format", "json")
    assert orjson.loads(odd.stdout) == [{"d": "1 day, 0:00:00", "b": "YWI="}], odd.stderr
    many = ", ".join(map(str, range(6000)))
    long = cli(
        data, url, "query", f"SELECT count(*) AS n FROM fact_orders WHERE cart_id IN ({many})"
    )
    assert long.returncode == 0 and "Traceback" not in long.stderr, long.stderr[-500:]
    twice = cli(data, url, "query", "SELECT 1 AS a, 2 AS a", "--format", "json")
    assert "a comes more than once: give each an alias" in twice.stderr


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("DELETE FROM fact_orders", "got a statement of type DELETE"),
        ("SELECT 1; SELECT 2", "expected one SQL statement, got 2"),
        ("SELECT * FROM read_csv('/etc/hostname')", "file system operations are disabled"),
        ("SELECT * FROM no_such_mart", "no_such_mart does not exist"),
    ],
)
def test_query_refuses_what_does_not_only_read_the_marts(
    tmp_path: Path, api: tuple[str, Catalog], sql: str, says: str
) -> None:
    url, _ = api
    data = tmp_path / "data"
    (data / "serving").mkdir(parents=True)
    with duckdb.connect(str(data / "serving" / "analytics.duckdb")) as con:
        con.execute("CREATE SCHEMA bq_analytics")
        con.execute("CREATE TABLE bq_analytics.fact_orders AS SELECT 1 AS cart_id")
    done = cli(data, url, "query", sql)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert says in done.stderr.strip().splitlines()[-1]


def test_query_before_any_publication_says_what_to_run(
    tmp_path: Path, api: tuple[str, Catalog]
) -> None:
    url, _ = api
    done = cli(tmp_path / "data", url, "query", "SELECT 1")
    assert "no published marts at" in one_error_line(done)
    assert "run `ey-platform transform`" in done.stderr


def test_the_published_marts_are_the_models_of_the_marts_folder() -> None:
    models = sorted(p.stem for p in (DBT / "models" / "marts").glob("*.sql"))
    assert sorted(MARTS) == models


def test_a_full_refresh_rebuilds_the_marts_and_keeps_the_snapshots_history(
    tmp_path: Path, api: tuple[str, Catalog]
) -> None:
    url, _ = api
    data = tmp_path / "data"
    _everything(data, url)
    history = "SELECT * FROM bq_analytics_build.products_snapshot ORDER BY ALL"
    before, versions = _published(data), rows(data, history)
    done = cli(data, url, "transform", "--quiet", "--full-refresh")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "marts published" in done.stdout
    assert rows(data, history) == versions  # dbt never rebuilds a snapshot
    assert _published(data) == before  # the same raw layer, the same marts
    ran = orjson.loads((data / "dbt" / "target" / "run_results.json").read_bytes())
    assert ran["args"]["which"] == "build" and ran["args"]["full_refresh"] is True


def test_a_serving_file_that_cannot_be_written_publishes_nothing(
    tmp_path: Path, api: tuple[str, Catalog]
) -> None:
    """The new serving file is written before the warehouse's marts are replaced: when
    it cannot be, the build's results are still recorded and nothing is published."""
    url, catalog = api
    data = tmp_path / "data"
    _everything(data, url)
    before = _published(data)
    catalog.carts.delete(5)
    for args in (("stream", "poll", "--once"), ("stream", "consume", "--drain")):
        _run(data, url, *args)
    serving = data / "serving"
    (serving / "analytics.duckdb").unlink()
    serving.rmdir()
    serving.write_text("in the way\n")  # a file where the folder should be
    line = one_error_line(cli(data, url, "transform", "--quiet"))
    assert "publication failed: cannot write" in line and str(serving) in line, line
    assert _published(data) == before  # cart 5 is still there: nothing was published
    runs = "SELECT run_id FROM bq_raw._pipeline_runs WHERE job = 'transform' ORDER BY started_at"
    failed_run = rows(data, runs)[-1][0]
    (tests,) = rows(
        data,
        f"SELECT count(*) FROM bq_raw._quality_results WHERE run_id = '{failed_run}' "
        "AND check_name LIKE 'row_count_%'",
    )[0]
    assert tests == 4  # the build's tests, recorded though nothing was published
