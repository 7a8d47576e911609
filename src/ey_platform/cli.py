"""The ``ey-platform`` command line: one command per stage, no business logic here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ey_platform import __version__
from ey_platform.errors import ConfigError, PlatformError
from ey_platform.logs import setup_logging
from ey_platform.models import ENTITIES
from ey_platform.settings import Settings, load_settings

app = typer.Typer(
    name="ey-platform",
    help="EY Data Platform: FakeStore API -> raw lake -> warehouse -> dbt star schema.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
fakestore_app = typer.Typer(help="The bundled FakeStore-compatible server.", no_args_is_help=True)
app.add_typer(fakestore_app, name="fakestore")

console = Console()
_state: dict[str, Any] = {"debug": False}

ApiUrl = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option("--api-url", help="FakeStore base URL [env: EYP_API_URL]."),
]
DataDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--data-dir", help="Local data folder [env: EYP_DATA_DIR]."),
]


def settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def _version(value: bool) -> None:
    if value:
        console.print(f"ey-platform {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """EY Data Platform command line. Settings come from EYP_* variables and .env."""
    _state["debug"] = debug
    setup_logging(logging.DEBUG if debug else logging.INFO)


@app.command("config")
def config_cmd(api_url: ApiUrl = None, data_dir: DataDir = None) -> None:
    """Print the effective settings as JSON, secrets masked."""
    effective = settings(api_url=api_url, data_dir=data_dir)
    sys.stdout.write(orjson.dumps(effective.masked(), option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command("fetch")
def fetch_cmd(api_url: ApiUrl = None) -> None:
    """Fetch and validate products, users and carts; print the counts. Stores nothing."""
    from ey_platform.pipelines.extract import count_valid
    from ey_platform.source.client import FakeStoreClient

    with FakeStoreClient.from_settings(settings(api_url=api_url)) as client:
        _print_counts([count_valid(client, entity) for entity in ENTITIES])


def _print_counts(rows: list[Any]) -> None:
    table = Table("entity", "extracted", "valid", "quarantined", title="Fetched and validated")
    for row in rows:
        table.add_row(row.entity, str(row.extracted), str(row.valid), str(row.rejected))
    console.print(table)


@fakestore_app.command("serve")
def fakestore_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 42,
    products: Annotated[int, typer.Option(min=1, help="Number of products.")] = 20,
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 10,
    carts: Annotated[int, typer.Option(min=0, help="Number of carts.")] = 7,
    live_rate: Annotated[
        float, typer.Option(min=0, help="Changes per second to carts (and prices); 0: still.")
    ] = 0.0,
    faults: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Fault plan, e.g. 'error=x2,ratelimit=0.1,latency=0.05'."),
    ] = None,
) -> None:
    """Serve a FakeStore-compatible API with synthetic data (Ctrl-C stops it)."""
    import uvicorn

    from ey_platform.source.data import Catalog
    from ey_platform.source.faults import FaultPlan
    from ey_platform.source.server import create_app, free_port

    try:
        plan = FaultPlan.parse(faults, seed)
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    catalog = Catalog(seed, products, users, carts)
    port = port or free_port(host)
    console.print(f"FakeStore on http://{host}:{port} ({products} products, {users} users, "
                  f"{carts} carts)", highlight=False)  # fmt: skip
    uvicorn.run(create_app(catalog, plan, live_rate), host=host, port=port, log_level="warning")


@app.command("demo")
def demo_cmd(api_url: ApiUrl = None) -> None:
    """Run the main job end to end on embedded defaults against the bundled server
    (or --api-url) and print a summary."""
    from ey_platform.pipelines.extract import count_valid
    from ey_platform.source.client import FakeStoreClient
    from ey_platform.source.server import create_app, serve_in_thread

    with (
        _api(api_url, create_app, serve_in_thread) as url,
        FakeStoreClient.from_settings(settings(api_url=url)) as client,
    ):
        _print_counts([count_valid(client, entity) for entity in ENTITIES])


def _api(api_url: str | None, create_app: Any, serve_in_thread: Any) -> Any:
    import contextlib

    if api_url:
        return contextlib.nullcontext(api_url)
    return serve_in_thread(create_app())


def main() -> None:
    """Entry point: a platform error is one line on stderr and exit code 1 (2 for bad
    configuration); ``--debug`` shows the traceback."""
    try:
        app(standalone_mode=True)
    except PlatformError as exc:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
