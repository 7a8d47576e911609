"""Fixes for gaps of bqemulator 1.4.0 that would make it disagree with BigQuery.

Installed into the emulators' own virtualenv by ``scripts/emulators.sh``, which starts the
emulator through it (``python -m eyp_bqemulator_patches start ...``); the product never
imports it.

- CSV load jobs: the emulator always reads a header line and sniffs the delimiter and
  quote, ignoring ``fieldDelimiter``, ``quote`` and ``skipLeadingRows``. BigQuery honours
  them (and skips no line by default). The platform loads each JSONL line as a single CSV
  field (delimiter ``\\x01``, no quoting), which only works if they are honoured.
- ``CREATE TABLE t (columns) AS (SELECT ...)``: the emulator rewrites the combined form
  (which DuckDB cannot parse) only when the query is not in parentheses; dbt-bigquery
  writes it in parentheses for every model with an enforced contract.
"""

from __future__ import annotations

from typing import Any


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _patch_csv_loads() -> None:
    from bqemulator.jobs import executor

    original = executor._load_path_into_target

    def load_path_into_target(path: str, job: Any, ctx: Any) -> None:
        if job.source_format != "CSV":
            original(path, job, ctx)
            return
        config = job.raw_config
        delimiter = config.get("fieldDelimiter", ",")
        delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
        quote = config.get("quote", '"')
        skip = int(config.get("skipLeadingRows", 0) or 0)
        options = [
            "FORMAT CSV",
            "HEADER false",
            "AUTO_DETECT false",
            f"DELIMITER {_literal(delimiter)}",
            f"QUOTE {_literal(quote)}",
            f"ESCAPE {_literal(quote)}",
            f"SKIP {skip}",
        ]
        ctx.engine.execute(f"COPY {job.target_ref} FROM ? ({', '.join(options)})", [path])

    executor._load_path_into_target = load_path_into_target


def _patch_contract_ctas() -> None:
    from bqemulator.sql.rewriter import create_table_schema_ctas as rewriter
    from sqlglot import exp

    original = rewriter._apply_schema_ctas_rewrite

    def apply(create: Any) -> bool:
        body = create.expression
        if isinstance(body, exp.Subquery) and isinstance(body.this, exp.Query):
            create.set("expression", body.this)
        return bool(original(create))

    rewriter._apply_schema_ctas_rewrite = apply


if __name__ == "__main__":
    import sys

    from bqemulator.cli import main

    _patch_csv_loads()
    _patch_contract_ctas()
    sys.argv[0] = "bqemulator"
    sys.exit(main())
