"""A batch load on BigQuery: load jobs into staging tables, one transaction at the commit.

Each landed part is loaded by a load job straight from its ``gs://`` URI into a staging
table of one STRING column (CSV with delimiter ``\\x01`` and no quoting: JSON text never
holds a raw control byte, so a line is one field, byte for byte). The jobs run while the
extraction goes on. The commit is one multi-statement transaction: check the staged
count against the landed records, delete the day, insert the staged lines with the
metadata columns, swap the day's quarantine. Any error rolls all of it back, so readers
see the old day or the new one, never a mix. Staging tables expire after a day even if
a crash leaves them behind.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from ey_platform.errors import ReconciliationError, WarehouseError
from ey_platform.gcp import api_errors, with_job_label
from ey_platform.lake.base import LakeObject
from ey_platform.warehouse.base import LoadMeta
from ey_platform.warehouse.bigquery.ddl import line_schema
from ey_platform.warehouse.bigquery.literals import sql_literal, sql_string
from ey_platform.warehouse.raw_schema import raw_table

if TYPE_CHECKING:
    from ey_platform.warehouse.bigquery.warehouse import BigQueryWarehouse

_MISMATCH = "reconciliation failed"

Staged = tuple[str, LakeObject, Any]
"""A staging table, the lake object loaded into it, and its load job."""


def _insert(target: str, table: str, values: dict[str, str], source: str) -> str:
    """``INSERT`` of every column of ``table`` (schema order), each from ``values``."""
    columns = raw_table(table).names
    select = ", ".join(values[name] for name in columns)
    return f"INSERT INTO {target} ({', '.join(columns)})\nSELECT {select}\nFROM {source}"


class BigQueryPartitionLoad:
    """Load jobs into staging tables as parts land; one transaction at the commit."""

    def __init__(self, warehouse: BigQueryWarehouse, meta: LoadMeta) -> None:
        self.wh = warehouse
        self.meta = meta
        self.expected = 0
        self.prefix = f"_stage_{meta.entity}_{re.sub(r'[^A-Za-z0-9_]', '_', meta.run_id)}"
        self.prefix += f"_{uuid.uuid4().hex[:8]}"
        self.parts: list[Staged] = []
        self.rejects: Staged | None = None

    def _load(self, obj: LakeObject, suffix: str) -> Staged:
        from google.cloud import bigquery

        if not obj.uri.startswith("gs://"):
            raise WarehouseError(f"BigQuery loads from gs:// only, not {obj.uri}")
        stage = self.wh.stage_table(f"{self.prefix}_{suffix}")
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.CSV,
            field_delimiter="\x01",
            quote_character="",
            skip_leading_rows=0,
            allow_jagged_rows=False,
            max_bad_records=0,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=line_schema(),
        )
        with_job_label(self.wh.client, config)
        with api_errors(WarehouseError, f"load of {obj.uri} into {stage}"):
            job = self.wh.client.load_table_from_uri(
                obj.uri, f"{self.wh.project}.{self.wh.raw}.{stage}", job_config=config
            )
        return stage, obj, job

    def add(self, part: LakeObject) -> None:
        self.expected += part.records
        self.parts.append(self._load(part, f"p{len(self.parts):05d}"))

    def add_rejects(self, rejects: LakeObject) -> None:
        if rejects.records:
            self.rejects = self._load(rejects, "rejects")

    def commit(self) -> int:
        try:
            self._wait()
            staged = " UNION ALL ".join(
                f"SELECT line, {sql_string(obj.uri)} AS source FROM {self.wh.table(stage)}"
                for stage, obj, _ in self.parts
            )
            try:
                self.wh.run(self._script(staged))
            except WarehouseError as exc:
                if _MISMATCH in str(exc):
                    raise ReconciliationError(
                        f"{self.meta.entity} {self.meta.day}: landed {self.expected} records, "
                        f"the load jobs staged a different count; nothing changed"
                    ) from None
                raise
            return self.expected
        finally:
            self.abort()

    def _staged(self) -> list[Staged]:
        return [*self.parts, *([self.rejects] if self.rejects else [])]

    def _wait(self) -> None:
        for stage, obj, job in self._staged():
            with api_errors(WarehouseError, f"load of {obj.uri} into {stage}"):
                job.result()

    def _script(self, staged: str) -> str:
        """One transaction: check the staged count, replace the day's rows and its
        quarantine. ``staged`` is the union of the staging tables ('' if no part)."""
        m, wh = self.meta, self.wh
        day, target, quarantine = sql_literal(m.day), wh.table(m.entity), wh.table("_quarantine")
        mismatch = sql_string(f"{_MISMATCH}: {m.entity} {m.day}, {self.expected} landed")
        statements = ["BEGIN TRANSACTION"]
        if staged:
            statements.append(
                f"SELECT IF((SELECT count(*) FROM ({staged})) = {self.expected}, 0, "
                f"ERROR({mismatch}))"
            )
        statements.append(f"DELETE FROM {target} WHERE _ingestion_date = {day}")
        if staged:
            statements.append(_insert(target, m.entity, self._record_values(), f"({staged})"))
        statements.append(
            f"DELETE FROM {quarantine} WHERE entity = {sql_string(m.entity)} "
            f"AND _ingestion_date = {day}"
        )
        if self.rejects is not None:
            stage, obj, _ = self.rejects
            values = self._quarantine_values(obj)
            statements.append(_insert(quarantine, "_quarantine", values, wh.table(stage)))
        statements.append("COMMIT TRANSACTION")
        return ";\n".join(statements) + ";"

    def _record_values(self) -> dict[str, str]:
        """Each column of a raw record table, from a staged ``line`` and its ``source``."""
        m = self.meta
        return {
            "_raw": "PARSE_JSON(line)",
            "id": "SAFE_CAST(JSON_VALUE(line, '$.id') AS INT64)",
            "_ingestion_date": sql_literal(m.day),
            "_extracted_at": sql_literal(m.extracted_at),
            "_loaded_at": "CURRENT_TIMESTAMP()",
            "_source_file": "source",
            "_run_id": sql_string(m.run_id),
            "_record_hash": "TO_HEX(MD5(line))",
        }

    def _quarantine_values(self, rejects: LakeObject) -> dict[str, str]:
        """Each column of the quarantine, from a staged ``line`` of the rejects file."""
        m = self.meta
        return {
            "entity": sql_string(m.entity),
            "_ingestion_date": sql_literal(m.day),
            "_run_id": sql_string(m.run_id),
            "reason": "JSON_VALUE(line, '$.reason')",
            "record": "JSON_QUERY(PARSE_JSON(line), '$.record')",
            "_source_file": sql_string(rejects.uri),
            "_loaded_at": "CURRENT_TIMESTAMP()",
        }

    def abort(self) -> None:
        for stage, _, job in self._staged():
            if not job.done():
                job.cancel()
            self.wh.drop(stage)
        self.parts.clear()
        self.rejects = None
