"""The exchange CA, trust store and signatures: known good, and each way to be wrong."""

from __future__ import annotations

import datetime as dt
import os
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from datawharf.errors import InvalidArgument
from datawharf.pki import (
    Authority,
    CertificateError,
    Credentials,
    Role,
    RoleError,
    SignatureError,
    TrustStore,
    load_certificate,
    sign,
    verify_signature,
)


@pytest.fixture()
def ca(tmp_path: Path) -> Authority:
    return Authority.init(tmp_path / "ca")


def test_issue_names_role_and_organisation(ca: Authority, tmp_path: Path) -> None:
    creds = ca.issue("st-mary", Role.PARTY, organisation="st-mary-trust", days=7)
    ident = TrustStore(ca.ca_pem).verify(creds.cert_pem, roles=(Role.PARTY,))
    assert (ident.name, ident.role, ident.organisation) == ("st-mary", Role.PARTY, "st-mary-trust")
    assert ident.not_after - time.time() == pytest.approx(7 * 86400, abs=600)
    creds.save(tmp_path / "id")
    assert stat.S_IMODE(os.stat(tmp_path / "id" / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca.dir / "key.pem").st_mode) == 0o600
    assert Credentials.load(tmp_path / "id").identity == creds.identity
    assert "PRIVATE" not in repr(creds) and "st-mary" in repr(creds)
    assert [r.name for r in ca.issued()] == ["st-mary"]


def test_init_refuses_to_overwrite(ca: Authority) -> None:
    with pytest.raises(InvalidArgument, match="already holds a CA"):
        Authority.init(ca.dir)


def test_wrong_role_foreign_ca_and_expiry(ca: Authority, tmp_path: Path) -> None:
    trust = TrustStore(ca.ca_pem)
    buyer = ca.issue("acme", Role.BUYER)
    with pytest.raises(RoleError, match="buyer certificate; this needs a party"):
        trust.verify(buyer.cert_pem, roles=(Role.PARTY,))
    other = Authority.init(tmp_path / "other").issue("acme", Role.BUYER)
    with pytest.raises(CertificateError, match="not issued by this exchange's CA"):
        trust.verify(other.cert_pem)
    with pytest.raises(CertificateError, match="not now; the exchange.s operator renews it"):
        trust.verify(buyer.cert_pem, at=time.time() + 400 * 86400)


def test_own_certificate_out_of_its_lifetime_is_named_before_dialling(ca: Authority) -> None:
    creds = ca.issue("acme", Role.BUYER, days=1)
    assert creds.check_current().name == "acme"
    with pytest.raises(CertificateError, match="expired on .*wharf ca renew"):
        creds.check_current(at=time.time() + 2 * 86400)
    with pytest.raises(CertificateError, match="check this machine's clock"):
        creds.check_current(at=time.time() - 86400)


def test_renewal_trusts_the_records_not_the_certificate(ca: Authority, tmp_path: Path) -> None:
    holder = ca.issue("st-mary", Role.PARTY, organisation="stm", days=1)
    renewed = load_certificate(ca.renew(holder.cert_pem, days=30))
    assert renewed.public_key() == holder.certificate.public_key()
    ident = TrustStore(ca.ca_pem).verify(renewed)
    assert (ident.name, ident.role, ident.organisation) == ("st-mary", Role.PARTY, "stm")
    # A self-made certificate claiming a holder's name (the key of a buyer) is not renewed...
    buyer = ca.issue("mallory", Role.BUYER)
    now = dt.datetime.now(dt.timezone.utc)
    claim = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "st-mary"),
                       x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "party")])
    forged = (x509.CertificateBuilder().subject_name(claim).issuer_name(claim)
              .public_key(buyer.key.public_key()).serial_number(buyer.certificate.serial_number)
              .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(buyer.key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    with pytest.raises(CertificateError, match="not issued by this CA"):
        ca.renew(forged.public_bytes(Encoding.PEM))
    # ...nor is a revoked one.
    ca.revoke("mallory")
    with pytest.raises(CertificateError, match="revoked"):
        ca.renew(buyer.cert_pem)


def test_plaintext_channels_only_to_loopback() -> None:
    from datawharf.tls import channel

    with pytest.raises(InvalidArgument, match="loopback"):
        channel("203.0.113.5:50051", None, insecure=True)
    with pytest.raises(InvalidArgument, match="no identity"):
        channel("127.0.0.1:50051", None)
    channel("127.0.0.1:50051", None, insecure=True).close()


def test_names_are_whole(ca: Authority) -> None:
    with pytest.raises(InvalidArgument):
        ca.issue("acme\n", Role.BUYER)


def test_a_certificate_without_a_role_is_not_an_identity(ca: Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(ca._key, hashes.SHA256()))
    with pytest.raises(CertificateError, match="not a DataWharf identity"):
        TrustStore(ca.ca_pem).verify(cert)


def test_revocation_through_the_crl_file_and_in_band(ca: Authority, tmp_path: Path) -> None:
    trust = TrustStore(ca.ca_pem, crl_path=ca.crl_path)
    holder = ca.issue("riverside", Role.PARTY)
    trust.verify(holder.cert_pem)
    time.sleep(0.01)  # a new mtime
    ca.revoke("riverside", reason="left the exchange")
    assert trust.refresh() is True
    with pytest.raises(CertificateError, match="revoked"):
        trust.verify(holder.cert_pem)
    # A holder that never reads the file learns it from the CRL the gateway relays.
    other = TrustStore(ca.ca_pem)
    assert other.add_crl(ca.crl_path.read_bytes()) is True
    assert other.is_revoked(holder.identity.serial)
    # An older CRL does not undo a newer one; a CRL of another CA is refused.
    assert other.add_crl(ca.crl_path.read_bytes()) is False
    with pytest.raises(CertificateError, match="not signed by this exchange's CA"):
        other.add_crl(Authority.init(tmp_path / "x").crl_path.read_bytes())
    with pytest.raises(InvalidArgument, match="no live certificate"):
        ca.revoke("riverside")
    # A lost crl.pem does not restart the numbering (a trust store would ignore the new list).
    ca.crl_path.unlink()
    ca.issue("other", Role.BUYER)
    ca.revoke("other")
    assert other.add_crl(ca.crl_path.read_bytes()) is True


def test_gateway_certificates_name_their_hosts(ca: Authority) -> None:
    cert = load_certificate(ca.issue("gw", Role.GATEWAY, hosts=("wharf.example",)).cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "wharf.example" in san.get_values_for_type(x509.DNSName)
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}


def test_signatures_are_bound_to_their_domain(ca: Authority) -> None:
    creds = ca.issue("acme", Role.BUYER)
    sig = sign(creds.key, b"job", b"payload")
    verify_signature(creds.certificate, b"job", b"payload", sig, what="t")
    for domain, data in ((b"receipt", b"payload"), (b"job", b"payloaD")):
        with pytest.raises(SignatureError, match="does not match"):
            verify_signature(creds.certificate, domain, data, sig, what="t")
    with pytest.raises(SignatureError):
        verify_signature(creds.certificate, b"job", b"payload", b"\x00" * 300, what="t")


def test_oversize_and_garbage_certificates(ca: Authority) -> None:
    with pytest.raises(CertificateError, match="larger"):
        load_certificate(b"x" * (64 << 10))
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
