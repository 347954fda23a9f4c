"""The errors DataWharf raises, one per gRPC status code it uses.

    WharfError
    ├── InvalidArgument      a request or spec is malformed
    ├── NotFound             unknown dataset, column, job, party
    ├── Unauthenticated      no certificate, or one that is expired, revoked or foreign
    ├── PermissionDenied     not your job; a holder's policy refused; the wrong role
    ├── AlreadyExists        a second stream under a connected holder's name
    ├── FailedPrecondition   wrong state (result of an unfinished job, ...)
    ├── ResourceExhausted    a size or count limit
    ├── Unavailable          the gateway cannot be reached
    ├── DeadlineExceeded     a wait ran out of time
    ├── Internal             a fault on the server side; its detail is logged there
    └── JobFailed            a job ended FAILED or CANCELLED (``view`` holds every holder's state)

The gateway turns these into status codes in one place
(``gateway.servicers.translate_errors``); clients turn status codes back into
these with ``from_rpc_error`` so callers catch one tree.
"""

from __future__ import annotations

from typing import Any

import grpc


# Trailing metadata that carries ``WharfError.argument`` across the wire.
ARGUMENT_KEY = "x-wharf-argument"


class WharfError(Exception):
    """``argument`` names the offending parameter as the Python API spells it
    (``min_parties``, ``bins``); front ends map it to their own spelling, such
    as the CLI's ``--min-parties``. Empty when no single argument is at fault."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, argument: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


class InvalidArgument(WharfError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(WharfError):
    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(WharfError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(WharfError):
    code = grpc.StatusCode.UNAUTHENTICATED


class AlreadyExists(WharfError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(WharfError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(WharfError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(WharfError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(WharfError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(WharfError):
    code = grpc.StatusCode.INTERNAL


class JobFailed(WharfError):
    """The job ended FAILED or CANCELLED; ``view`` has every holder's state and reason."""

    def __init__(self, view: "Any") -> None:
        super().__init__(f"job {view.job_id} {view.state}: {view.reason or 'no reason given'}")
        self.view = view


_BY_CODE: dict[grpc.StatusCode, type[WharfError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        PermissionDenied,
        Unauthenticated,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


def from_rpc_error(err: grpc.RpcError) -> WharfError:
    """The WharfError matching a failed call's status, keeping its message."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, WharfError)
    text = (details or "").lower()
    if code == grpc.StatusCode.UNAVAILABLE and any(w in text for w in ("handshake", "ssl", "socket closed")):
        # A gateway that refuses a client certificate closes the connection without a word.
        details = (f"gateway unavailable: {details}. If the gateway is running, the TLS handshake failed: check "
                   "that your identity is a certificate of this exchange's CA and not expired, that you dial a "
                   "name or address the gateway's certificate lists (`wharf ca issue --host`), and that the "
                   "gateway runs with TLS")
    elif code == grpc.StatusCode.UNAVAILABLE:
        details = f"gateway unavailable: {details}. Is `wharf gateway serve` running at that address?"
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    argument = next((str(v) for k, v in (trailing or ()) if k == ARGUMENT_KEY), "")
    out = cls(details or code.name, argument=argument)
    out.code = code
    return out
