"""The one place a server asks who is calling: certificates, roles, revocation, the insecure header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datawharf.errors import InvalidArgument
from datawharf.identity import CALLER_KEY, Gate, peer_name
from datawharf.pki import Authority, CertificateError, Role, RoleError, TrustStore


class Context:
    def __init__(self, pem: bytes = b"", cn: str = "", metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._auth: dict[str, list[bytes]] = {}
        if pem:
            self._auth = {"x509_pem_cert": [pem], "x509_common_name": [cn.encode()]}
        self._metadata = metadata

    def auth_context(self) -> dict[str, Any]:
        return self._auth

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_the_certificate_decides_not_the_header(tmp_path: Path) -> None:
    ca = Authority.init(tmp_path / "ca")
    refusals: list[str] = []
    gate = Gate(TrustStore(ca.ca_pem, crl_path=ca.crl_path), on_refusal=refusals.append)
    mallory = ca.issue("mallory", Role.BUYER)
    ctx = Context(mallory.cert_pem, "mallory", ((CALLER_KEY, "acme-insurance"),))
    assert gate.caller(ctx, Role.BUYER).name == "mallory"
    assert peer_name(ctx) == "mallory"
    with pytest.raises(RoleError):
        gate.caller(ctx, Role.PARTY)
    with pytest.raises(CertificateError, match="no client certificate"):
        gate.caller(Context(metadata=((CALLER_KEY, "acme-insurance"),)), Role.BUYER)
    ca.revoke("mallory")
    gate.trust.refresh()  # type: ignore[union-attr]
    with pytest.raises(CertificateError, match="revoked"):
        gate.caller(ctx, Role.BUYER)  # the cached identity does not outlive the revocation
    assert refusals == ["wrong_role", "no_certificate", "revoked"]


def test_insecure_gateways_take_the_header(tmp_path: Path) -> None:
    gate = Gate(None)
    assert gate.caller(Context(metadata=((CALLER_KEY, "acme"),)), Role.BUYER).name == "acme"
    with pytest.raises(InvalidArgument, match="--insecure"):
        gate.caller(Context(), Role.BUYER)
    with pytest.raises(InvalidArgument, match="not valid"):
        gate.caller(Context(metadata=((CALLER_KEY, "a b"),)), Role.BUYER)
