"""``ey-platform dashboard``: write the offline HTML page of the published marts, and
serve it on loopback if asked."""

from __future__ import annotations

import socket
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Optional

import typer

from ey_platform.cli.output import console
from ey_platform.cli.root import DataDir, app, settings
from ey_platform.errors import PlatformError

LOOPBACK = "127.0.0.1"


@app.command("dashboard")
def dashboard_cmd(
    output: Annotated[
        Optional[Path],  # noqa: UP045 - Typer reads the annotation at run time
        typer.Option(
            "--output",
            dir_okay=False,
            help="Where to write it [default: <data-dir>/serving/dashboard.html].",
        ),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Also serve it on loopback until Ctrl-C.")
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of --serve; 0 picks a free one.")
    ] = 8050,
    data_dir: DataDir = None,
) -> None:
    """Write one HTML page of the published marts and the platform's health.

    Revenue by day and by category, top products, basket size, orders by user, cart
    activity, and a health strip. It opens offline, from the file system: Plotly's
    JavaScript is inside it. Only reads.
    """
    from ey_platform.serving.dashboard import write_dashboard

    page = write_dashboard(settings(data_dir=data_dir), output)
    console.print(f"dashboard: {page}", highlight=False, soft_wrap=True)
    if serve:
        serve_file(page, port)


def serve_file(page: Path, port: int) -> None:
    """Serve ``page`` at ``/`` on loopback until interrupted. The socket is bound before
    the address is printed, so the port printed is the one that answers (port 0 too)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def index(_: Request) -> FileResponse:
        return FileResponse(page, media_type="text/html; charset=utf-8")

    site = Starlette(routes=[Route("/", index), Route(f"/{page.name}", index)])
    # uvicorn's records go through the platform's logging, as the bundled server's do.
    config = uvicorn.Config(site, log_level="warning", log_config=None, access_log=False)
    with _listen(port) as listening:
        bound = listening.getsockname()[1]
        url = f"http://{LOOPBACK}:{bound}/"
        console.print(f"serving on {url} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
        # uvicorn stops gracefully on Ctrl-C, then raises it again: the stop asked for.
        with suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[listening])


def _listen(port: int) -> socket.socket:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((LOOPBACK, port))
        # Listening before the address is printed: a client that connects at once is
        # queued until uvicorn accepts, never refused (bound alone, it would be).
        listening.listen(128)
    except OSError as exc:
        listening.close()
        raise PlatformError(
            f"dashboard --serve: cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}"
        ) from None
    return listening
