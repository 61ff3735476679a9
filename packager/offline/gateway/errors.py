"""How a gateway run fails: Kaggle's ``GatewayRuntimeErrorType`` names and numbers, and ``result.json``."""

from __future__ import annotations

import enum
from typing import Any

#: ``ErrorDetails`` keeps this many characters at most (the end of a long traceback), as Kaggle's does.
DETAILS_CHARS = 8000


class ErrorType(enum.IntEnum):
    """Kaggle's gateway error types (stable across ``kaggle_evaluation`` versions)."""

    UNSPECIFIED = 0
    SERVER_NEVER_STARTED = 1
    SERVER_CONNECTION_FAILED = 2
    SERVER_RAISED_EXCEPTION = 3
    SERVER_MISSING_ENDPOINT = 4
    GATEWAY_RAISED_EXCEPTION = 5
    INVALID_SUBMISSION = 6
    GRPC_DEADLINE_EXCEEDED = 7


class GatewayError(Exception):
    """The run ends: ``kind`` says how (Kaggle's name), ``details`` what happened."""

    def __init__(self, kind: ErrorType, details: str):
        super().__init__(f"{kind.name}: {details}")
        self.kind, self.details = kind, details

    def result(self) -> dict[str, Any]:
        """The failure as Kaggle's ``result.json`` holds it."""
        return {"Succeeded": False, "ErrorType": int(self.kind), "ErrorName": self.kind.name,
                "ErrorDetails": self.details[-DETAILS_CHARS:]}


def invalid(details: str) -> GatewayError:
    """An answer the gateway refuses: the submission fails."""
    return GatewayError(ErrorType.INVALID_SUBMISSION, details)


__all__ = ["DETAILS_CHARS", "ErrorType", "GatewayError", "invalid"]
