"""The lake in a Cloud Storage bucket, same layout as the local lake.

Write-once is enforced by the service, not by the client: every object is uploaded with
``if_generation_match=0``, a precondition that holds only if no live object has the name,
so a second write of the same key is refused (HTTP 412), never an overwrite, even when two
writers race. The bucket's retention and the pipeline identities' lack of delete
permission (infra/terraform) keep published objects as they are.

An upload is one request of the whole object (resumable above 8 MB): nothing is visible
until it completes, so a crash leaves no partial object.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ey_platform.errors import LakeError
from ey_platform.gcp import api_errors
from ey_platform.lake.base import Keys, LakeObject, Tally

if TYPE_CHECKING:
    import google.cloud.storage as storage


class GcsWriter:
    def __init__(self, bucket: storage.Bucket, key: str, uri: str) -> None:
        self.bucket = bucket
        self.key = key
        self.uri = uri
        self._chunks: list[bytes] = []
        self._tally = Tally()

    def write(self, data: bytes, records: int) -> None:
        self._chunks.append(data)
        self._tally.add(data, records)

    def commit(self) -> LakeObject:
        from google.api_core.exceptions import PreconditionFailed

        data = b"".join(self._chunks)
        self._chunks.clear()
        content_type = "application/json" if self.key.endswith(".json") else "application/x-ndjson"
        with api_errors(LakeError, f"write {self.uri}"):
            try:
                self.bucket.blob(self.key).upload_from_string(
                    data, content_type=content_type, if_generation_match=0
                )
            except PreconditionFailed:
                raise LakeError(f"{self.uri} exists: lake objects are written once") from None
        return self._tally.lake_object(self.key, self.uri)

    def abort(self) -> None:
        self._chunks.clear()


class GcsLake:
    """Lake objects in ``bucket``. ``setup`` creates the bucket where the identity may
    (emulators, a developer's project); in production Terraform owns it."""

    def __init__(self, client: storage.Client, bucket: str) -> None:
        self.client = client
        self.bucket = client.bucket(bucket)

    def setup(self) -> None:
        from google.api_core.exceptions import Conflict, Forbidden

        with api_errors(LakeError, f"bucket gs://{self.bucket.name}"):
            try:
                if self.bucket.exists():
                    return
            except Forbidden:  # the pipeline identities may not read bucket metadata
                return
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                self.client.create_bucket(self.bucket)

    def create(self, key: str) -> GcsWriter:
        return GcsWriter(self.bucket, key, self.uri(key))

    def read(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        with api_errors(LakeError, f"read {self.uri(key)}"):
            try:
                data: bytes = self.bucket.blob(key).download_as_bytes()
            except NotFound:
                raise LakeError(f"no lake object {self.uri(key)}") from None
        return data

    def list(self, prefix: str) -> list[str]:
        with api_errors(LakeError, f"list {self.uri(prefix)}"):
            return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix))

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{key}"

    def sweep(self, prefix: str) -> Keys:
        """Nothing to sweep: an upload that did not complete leaves no object."""
        return []
