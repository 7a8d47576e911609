"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class PlatformError(Exception):
    """Base class for every error the platform reports to a person."""


class ConfigError(PlatformError):
    """A setting or a command-line argument is wrong."""


class SourceError(PlatformError):
    """The source API failed or answered something the platform cannot use."""


class SourceUnavailable(SourceError):
    """The source API did not answer usefully within the allowed attempts."""


class MalformedResponse(SourceError):
    """The source API answered 200 with a body that is not JSON of the expected shape."""


class ReconciliationError(PlatformError):
    """Counts between two hops of a pipeline do not match."""


class LakeError(PlatformError):
    """The raw lake refused an operation (for example a second write of the same object)."""


class WarehouseError(PlatformError):
    """The warehouse refused an operation or is busy beyond the allowed wait."""


class BusError(PlatformError):
    """The message bus refused an operation."""


class PipelineBusy(PlatformError):
    """Another run of the same pipeline holds the lock."""


class StateError(PlatformError):
    """The poller's state file cannot be read or written."""


class SuspiciousAnswer(SourceError):
    """A complete answer of the source would destroy stored data if taken at face value
    (far fewer records than stored, or every cart deleted); nothing was changed."""


class BatchHeld(PlatformError):
    """A batch run was held by a guard (too few records); the warehouse is untouched."""


class LakeIntegrityError(LakeError):
    """A lake object does not match its manifest (altered, truncated) or a manifest is
    unreadable; nothing was loaded."""
