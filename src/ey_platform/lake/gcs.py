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
import hashlib
from typing import TYPE_CHECKING

from ey_platform.errors import LakeError
from ey_platform.lake.base import LakeObject

if TYPE_CHECKING:
    import google.cloud.storage as storage


class GcsWriter:
    def __init__(self, bucket: storage.Bucket, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self._chunks: list[bytes] = []
        self._sha = hashlib.sha256()
        self._records = 0
        self._size = 0

    def write(self, data: bytes, records: int) -> None:
        self._chunks.append(data)
        self._sha.update(data)
        self._records += records
        self._size += len(data)

    def commit(self) -> LakeObject:
        from google.api_core.exceptions import PreconditionFailed

        blob = self.bucket.blob(self.key)
        data = b"".join(self._chunks)
        self._chunks.clear()
        content_type = "application/json" if self.key.endswith(".json") else "application/x-ndjson"
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except PreconditionFailed:
            raise LakeError(
                f"gs://{self.bucket.name}/{self.key} exists: lake objects are written once"
            ) from None
        return LakeObject(
            self.key,
            f"gs://{self.bucket.name}/{self.key}",
            self._records,
            self._size,
            self._sha.hexdigest(),
        )

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

        try:
            if self.bucket.exists():
                return
        except Forbidden:  # the pipeline identities may not read bucket metadata
            return
        with contextlib.suppress(Conflict):  # created meanwhile by another process
            self.client.create_bucket(self.bucket)

    def create(self, key: str) -> GcsWriter:
        return GcsWriter(self.bucket, key)

    def read(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            data: bytes = self.bucket.blob(key).download_as_bytes()
        except NotFound:
            raise LakeError(f"no lake object gs://{self.bucket.name}/{key}") from None
        return data

    def list(self, prefix: str) -> list[str]:
        return sorted(blob.name for blob in self.client.list_blobs(self.bucket, prefix=prefix))

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{key}"
