"""Who is calling: the one place a server asks.

With mutual TLS (the default) the caller is whoever the verified client
certificate names: ``Gate.caller`` reads it from ``context.auth_context()``,
checks it against the exchange CA's trust store (lifetime, revocation) and
that its role may make this call. The ``x-wharf-caller`` header is read only
by a gateway started with ``--insecure`` (loopback, for development and for
measuring what TLS costs); then every caller is whoever it says it is.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Callable

from datawharf.errors import InvalidArgument
from datawharf.pki import CertificateError, Identity, Role, RoleError, TrustStore, check_name

log = logging.getLogger("datawharf.identity")

CALLER_KEY = "x-wharf-caller"
_CACHE = 1024

__all__ = ["CALLER_KEY", "Gate", "caller_metadata", "check_name", "peer_certificate", "peer_name"]


def caller_metadata(name: str) -> tuple[tuple[str, str], ...]:
    """The self-asserted name an ``--insecure`` gateway reads."""
    return ((CALLER_KEY, check_name(name, "caller name")),)


class Gate:
    """Turns a call's context into a verified ``Identity`` or refuses it.

    ``trust`` None means the gateway runs ``--insecure``. ``on_refusal`` is
    told the reason of every refusal (for metrics)."""

    def __init__(self, trust: TrustStore | None, *, on_refusal: Callable[[str], None] | None = None) -> None:
        self.trust = trust
        self.on_refusal = on_refusal or (lambda reason: None)
        self._seen: OrderedDict[bytes, tuple[int, Identity]] = OrderedDict()

    @property
    def insecure(self) -> bool:
        return self.trust is None

    def caller(self, context: Any, *roles: Role) -> Identity:
        try:
            return self._caller(context, roles)
        except Exception as exc:
            self.on_refusal(_reason(exc))
            raise

    def _caller(self, context: Any, roles: tuple[Role, ...]) -> Identity:
        if self.trust is None:
            return _asserted(context, roles)
        pem = _peer_certificate(context)
        cached = self._seen.get(pem)
        if cached and cached[0] == self.trust.version:
            ident = cached[1]
            self._seen.move_to_end(pem)
            # Lifetime and revocation move with the clock and the CRL; the rest cannot change.
            return self.trust.verify(pem, roles=roles) if _stale(ident) else _check_role(ident, roles)
        ident = self.trust.verify(pem, roles=(), what="client certificate")
        self._seen[pem] = (self.trust.version, ident)
        if len(self._seen) > _CACHE:
            self._seen.popitem(last=False)
        return _check_role(ident, roles)

    def is_revoked(self, ident: Identity) -> bool:
        return self.trust is not None and self.trust.is_revoked(ident.serial)


def peer_name(context: Any) -> str:
    """The caller's name for records (logs, the wire tap), unverified: the certificate's
    common name, else the --insecure header. Never use it to authorise."""
    auth = context.auth_context() or {}
    names = auth.get("x509_common_name") or []
    if names:
        name = names[0]
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_KEY:
            return str(value)[:64]
    return ""


def _stale(ident: Identity) -> bool:
    return time.time() > ident.not_after


def _check_role(ident: Identity, roles: tuple[Role, ...]) -> Identity:
    if roles and ident.role not in roles:
        raise RoleError(
            f"{ident.name} holds a {ident.role.value} certificate; this call needs a "
            f"{' or '.join(r.value for r in roles)} certificate"
        )
    return ident


def peer_certificate(context: Any) -> bytes:
    """The caller's certificate (PEM) as its TLS handshake presented it."""
    return _peer_certificate(context)


def _peer_certificate(context: Any) -> bytes:
    auth = context.auth_context() or {}
    certs = auth.get("x509_pem_cert") or []
    if not certs:
        raise CertificateError(
            "the call carries no client certificate; connect with your identity "
            "(`--identity DIR` from `wharf ca issue`)"
        )
    pem = certs[0]
    return pem if isinstance(pem, bytes) else str(pem).encode()


def _asserted(context: Any, roles: tuple[Role, ...]) -> Identity:
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_KEY:
            name = check_name(str(value), "caller name")
            role = roles[0] if roles else Role.BUYER
            return Identity(name, role, name, 0, float("inf"), "")
    raise InvalidArgument(
        f"the call carries no caller identity; this gateway runs --insecure, so send metadata {CALLER_KEY!r}"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RoleError):
        return "wrong_role"
    if isinstance(exc, CertificateError):
        text = str(exc)
        for word, reason in (("revoked", "revoked"), ("valid from", "expired"), ("not issued", "foreign_ca"),
                             ("no client certificate", "no_certificate")):
            if word in text:
                return reason
        return "bad_certificate"
    return "no_identity"
