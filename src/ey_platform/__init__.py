"""EY Data Platform: FakeStore API -> raw lake -> warehouse -> dbt star schema."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ey-platform")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
