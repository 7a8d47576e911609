"""``ey-platform health``: the platform's state at a glance, for people and machines."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.text import Text

from ey_platform.cli.output import console, table
from ey_platform.cli.root import DataDir, app, settings

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@app.command("health")
def health_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Last run of each job, freshness of each source, backlog, dead letters, quality.

    Exit code 0 when healthy, 1 when something fails. Only reads.
    """
    from ey_platform.wiring import read_health

    report = read_health(settings(data_dir=data_dir))
    if as_json:
        sys.stdout.write(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        shown = table("area", "what", "status", "detail", title="Health")
        for finding in report.findings:
            status = Text(finding.status, style=_STYLE[finding.status])
            # Text, not markup: a detail may hold brackets (products[].quantity).
            shown.add_row(Text(finding.area), Text(finding.subject), status, Text(finding.detail))
        console.print(shown)
        console.print(Text("healthy") if report.healthy else Text("not healthy", style="bold red"))
    if not report.healthy:
        raise typer.Exit(1)
