"""The one exception type ops raise: it carries a protocol error code (see src/worker/protocol.ts)."""
from __future__ import annotations


ERROR_CODES = frozenset(
    ["bad_request", "unsupported_model", "pickle_refused", "oom", "nan_loss", "cancelled", "io", "internal"]
)


class WorkerError(Exception):
    """An error the server reports as ``{"type": "error", "code", "message", "hint"}``."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown worker error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def bad_request(message: str, hint: str | None = None) -> WorkerError:
    return WorkerError("bad_request", message, hint)
