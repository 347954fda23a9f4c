"""The exchange's certificates: who is who, checked with X.509.

Every buyer, data holder, operator and gateway holds an ECDSA P-256 key and
a certificate issued by the exchange's CA. The certificate's subject says
who and in which role:

    CN = name (as policies, grants and the ledger spell it)
    O  = organisation (min_parties counts distinct organisations)
    OU = role: buyer | party | operator | gateway | authority

``Authority`` is the CA, a directory whose private key is needed only to
issue and revoke (it can live offline). ``TrustStore`` is what every other
process holds: the CA certificate and the newest CRL it has seen; it turns
a certificate into a verified ``Identity`` or raises. ``Credentials`` is
one holder of a certificate: its key, its certificate and the CA's.

    CertificateError (UNAUTHENTICATED)   not issued by this CA, expired, revoked, malformed
    RoleError (PERMISSION_DENIED)        a valid certificate used for what its role may not do
    SignatureError (PERMISSION_DENIED)   a signature that does not match
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import ipaddress
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from datawharf.errors import InvalidArgument, PermissionDenied, Unauthenticated, WharfError

DEFAULT_DAYS = 30
CA_DAYS = 3650
CRL_DAYS = 30
# Certificates, CRLs and signatures arrive from the network: bound them before parsing.
MAX_CERT_BYTES = 16 << 10
MAX_CRL_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 256

CA_FILE, CERT_FILE, KEY_FILE, CRL_FILE = "ca.pem", "cert.pem", "key.pem", "crl.pem"


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.fullmatch(name or ""):
        raise InvalidArgument(
            f"{what} {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class Role(str, enum.Enum):
    BUYER = "buyer"
    PARTY = "party"
    OPERATOR = "operator"
    GATEWAY = "gateway"
    # A second reviewer for listings of public data (`wharf listing approve` after the operator's).
    AUTHORITY = "authority"


class CertificateError(Unauthenticated):
    pass


class RoleError(PermissionDenied):
    pass


class SignatureError(PermissionDenied):
    pass


@dataclass(frozen=True)
class Identity:
    """Who a verified certificate names."""

    name: str
    role: Role
    organisation: str
    serial: int
    not_after: float
    fingerprint: str  # SHA-256 of the certificate's DER, hex

    def __str__(self) -> str:
        return f"{self.role.value} {self.name} ({self.organisation})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else ""


def load_certificate(pem: bytes) -> x509.Certificate:
    if len(pem) > MAX_CERT_BYTES:
        raise CertificateError(f"certificate of {len(pem)} bytes is larger than the {MAX_CERT_BYTES} allowed")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def identity_of(cert: x509.Certificate) -> Identity:
    """The subject's name, role and organisation, without checking who issued it."""
    subject = cert.subject
    name = _attr(subject, NameOID.COMMON_NAME)
    role_text = _attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    try:
        role = Role(role_text)
        check_name(name, "certificate name")
    except (ValueError, WharfError):
        raise CertificateError(
            f"certificate subject {subject.rfc4514_string()!r} is not a DataWharf identity "
            "(it needs CN=name and OU=buyer|party|operator|gateway|authority); issue one with `wharf ca issue`"
        ) from None
    return Identity(
        name=name,
        role=role,
        organisation=_attr(subject, NameOID.ORGANIZATION_NAME) or name,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc.timestamp(),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


# ------------------------------------------------------------------ signatures
def sign(key: ec.EllipticCurvePrivateKey, domain: bytes, data: bytes) -> bytes:
    """ECDSA-SHA256 over ``domain || 0 || data``: the domain keeps a job signature
    from ever being accepted as a contribution signature and vice versa."""
    return key.sign(domain + b"\0" + data, ec.ECDSA(hashes.SHA256()))


def verify_signature(cert: x509.Certificate, domain: bytes, data: bytes, signature: bytes, *, what: str) -> None:
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or len(signature) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"{what}: the signature cannot be checked against the signer's certificate")
    try:
        public.verify(signature, domain + b"\0" + data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(f"{what}: the signature does not match what was signed") from None


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------- trust store
class TrustStore:
    """The CA certificate and the newest CRL seen; verifies certificates.

    A CRL is accepted only if the CA signed it, so it may come from any
    source (a file the operator copies, the gateway's task messages); a
    newer CRL number replaces an older one and an older one is ignored.
    """

    def __init__(self, ca_pem: bytes, *, crl_path: Path | None = None) -> None:
        self.ca = load_certificate(ca_pem)
        self.ca_pem = ca_pem
        self.crl_path = crl_path
        self._crl: x509.CertificateRevocationList | None = None
        self._crl_pem = b""
        self._crl_number = -1
        self._crl_mtime = 0.0
        self._revoked: frozenset[int] = frozenset()
        self._lock = threading.Lock()
        self.version = 0  # bumps whenever the revoked set changes
        self.refresh()

    @classmethod
    def load(cls, ca_path: Path, crl_path: Path | None = None) -> "TrustStore":
        return cls(_read(ca_path, "CA certificate"), crl_path=crl_path)

    @property
    def crl_pem(self) -> bytes:
        return self._crl_pem

    def refresh(self) -> bool:
        """Re-read the CRL file if it changed; True if the revoked set changed."""
        if self.crl_path is None:
            return False
        try:
            mtime = self.crl_path.stat().st_mtime
        except FileNotFoundError:
            return False
        if mtime == self._crl_mtime:
            return False
        self._crl_mtime = mtime
        return self.add_crl(self.crl_path.read_bytes())

    def add_crl(self, pem: bytes) -> bool:
        """Take ``pem`` if the CA signed it and it is newer; True if the revoked set changed."""
        if not pem:
            return False
        if len(pem) > MAX_CRL_BYTES:
            raise CertificateError(f"a CRL of {len(pem)} bytes is larger than the {MAX_CRL_BYTES} allowed")
        try:
            crl = x509.load_pem_x509_crl(pem)
        except ValueError as exc:
            raise CertificateError(f"not a PEM CRL: {exc}") from None
        if crl.issuer != self.ca.subject or not crl.is_signature_valid(self.ca.public_key()):  # type: ignore[arg-type]
            raise CertificateError("the CRL was not signed by this exchange's CA; ignore it or fetch the CA's own")
        number = _crl_number(crl)
        with self._lock:
            if number <= self._crl_number:
                return False
            revoked = frozenset(r.serial_number for r in crl)
            changed = revoked != self._revoked
            self._crl, self._crl_pem, self._crl_number, self._revoked = crl, pem, number, revoked
            if changed:
                self.version += 1
            return changed

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked

    @property
    def revoked(self) -> frozenset[int]:
        return self._revoked

    @property
    def crl_number(self) -> int:
        return self._crl_number

    def verify(self, cert: x509.Certificate | bytes, *, roles: Iterable[Role] = (), at: float | None = None,
               what: str = "certificate") -> Identity:
        """The verified identity of ``cert``: issued by this CA, in its lifetime, not revoked, of one of ``roles``."""
        if isinstance(cert, bytes):
            cert = load_certificate(cert)
        ident = identity_of(cert)
        try:
            cert.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError(
                f"{what} of {ident.name} was not issued by this exchange's CA ({self.ca.subject.rfc4514_string()}); "
                "use a certificate from `wharf ca issue` of this exchange"
            ) from None
        now = _now() if at is None else dt.datetime.fromtimestamp(at, dt.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CertificateError(
                f"{what} of {ident.name} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now; the exchange's operator renews it with `wharf ca renew cert.pem`"
            )
        if self.is_revoked(ident.serial):
            raise CertificateError(f"{what} of {ident.name} (serial {ident.serial:x}) has been revoked")
        allowed = tuple(roles)
        if allowed and ident.role not in allowed:
            raise RoleError(
                f"{ident.name} holds a {ident.role.value} certificate; this needs a "
                f"{' or '.join(r.value for r in allowed)} certificate"
            )
        return ident


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument("the private key is not an ECDSA key; issue one with `wharf ca issue`")
    return key


# ---------------------------------------------------------------- credentials
@dataclass(frozen=True)
class Credentials:
    """One certified identity's files: its key, its certificate, the CA's certificate."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load(cls, directory: Path) -> "Credentials":
        """``ca.pem``, ``cert.pem`` and ``key.pem`` from one directory (as `wharf ca issue --out` writes them)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InvalidArgument(
                f"identity directory {directory} does not exist; issue one with "
                "`wharf ca issue --role ROLE NAME --out DIR`", argument="identity")
        return cls(_read(directory / CA_FILE, "CA certificate"), _read(directory / CERT_FILE, "certificate"),
                   _read(directory / KEY_FILE, "private key"))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CA_FILE).write_bytes(self.ca_pem)
        (directory / CERT_FILE).write_bytes(self.cert_pem)
        write_private(directory / KEY_FILE, self.key_pem)

    @property
    def certificate(self) -> x509.Certificate:
        return load_certificate(self.cert_pem)

    @property
    def identity(self) -> Identity:
        return identity_of(self.certificate)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        return load_key(self.key_pem)

    def check_current(self, *, at: float | None = None) -> Identity:
        """This identity, or CertificateError if its certificate is outside its lifetime (a gateway
        would refuse the handshake with no more than "handshake failed")."""
        cert = self.certificate
        now = _now() if at is None else dt.datetime.fromtimestamp(at, dt.timezone.utc)
        ident = identity_of(cert)
        if now > cert.not_valid_after_utc:
            raise CertificateError(f"your certificate ({ident}) expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
                                   "send its cert.pem (never the key) to the exchange's operator to renew (`wharf ca renew`)")
        if now < cert.not_valid_before_utc:
            raise CertificateError(f"your certificate ({ident}) is valid only from "
                                   f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock")
        return ident

    def trust(self, crl_path: Path | None = None) -> TrustStore:
        return TrustStore(self.ca_pem, crl_path=crl_path)

    def __repr__(self) -> str:  # never print the key
        return f"Credentials({self.identity})"


# ------------------------------------------------------------------ authority
@dataclass(frozen=True)
class Issued:
    serial: int
    name: str
    role: str
    organisation: str
    not_after: float
    revoked_at: float | None = None
    reason: str = ""


class Authority:
    """The exchange CA: a directory with its certificate, key, CRL and an index of what it issued."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        if not (self.dir / KEY_FILE).exists():
            raise InvalidArgument(f"{self.dir} holds no CA; create one with `wharf ca init --dir {self.dir}`")
        self.cert = load_certificate((self.dir / CA_FILE).read_bytes())
        self._key = load_key((self.dir / KEY_FILE).read_bytes())

    @classmethod
    def init(cls, directory: Path, *, name: str = "DataWharf exchange CA", days: int = CA_DAYS) -> "Authority":
        directory = Path(directory)
        if (directory / KEY_FILE).exists():
            raise InvalidArgument(f"{directory} already holds a CA; refusing to overwrite its key")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ca")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        write_private(directory / KEY_FILE, key_to_pem(key))
        (directory / CA_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "index.json").write_text("[]")
        ca = cls(directory)
        ca._write_crl([])
        return ca

    @property
    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def crl_path(self) -> Path:
        return self.dir / CRL_FILE

    def issued(self) -> list[Issued]:
        return [Issued(**r) for r in json.loads((self.dir / "index.json").read_text())]

    def _save_index(self, records: Sequence[Issued]) -> None:
        tmp = self.dir / "index.json.tmp"
        tmp.write_text(json.dumps([r.__dict__ for r in records], indent=1))
        tmp.replace(self.dir / "index.json")

    def issue(self, name: str, role: Role | str, *, organisation: str = "", days: int = DEFAULT_DAYS,
              hosts: Sequence[str] = ()) -> Credentials:
        """A fresh key pair and a certificate for ``name`` in ``role``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._certify(key.public_key(), name, Role(role), organisation=organisation, days=days, hosts=hosts)
        return Credentials(self.ca_pem, cert, key_to_pem(key))

    def issue_request(self, csr_pem: bytes, name: str, role: Role | str, *, organisation: str = "",
                      days: int = DEFAULT_DAYS, hosts: Sequence[str] = ()) -> bytes:
        """A certificate (PEM) for the key of a request made with ``make_request``: the key never
        leaves its owner. The operator decides name, role and organisation; the request only
        proves possession of the key and must name the same ``name``."""
        if len(csr_pem) > MAX_CERT_BYTES:
            raise CertificateError(f"a request of {len(csr_pem)} bytes is larger than {MAX_CERT_BYTES}")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CertificateError(f"not a PEM certificate request: {exc}") from None
        if not csr.is_signature_valid:
            raise CertificateError("the request's signature does not hold: it was not made with its key")
        claimed = _attr(csr.subject, NameOID.COMMON_NAME)
        if claimed != name:
            raise CertificateError(f"the request names {claimed!r}, not {name!r}; check which request this is")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise CertificateError("the request's key is not ECDSA P-256; make it with `wharf ca request`")
        return self._certify(public, name, Role(role), organisation=organisation, days=days, hosts=hosts)

    def renew(self, cert_pem: bytes, *, days: int = DEFAULT_DAYS) -> bytes:
        """A new certificate (PEM) for the same public key, name, role, organisation and hosts as
        ``cert_pem``: which must be one this CA issued (by its record, not by what it claims) and
        not revoked; it may have expired."""
        old = load_certificate(cert_pem)
        try:
            old.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError("that certificate was not issued by this CA; nothing to renew") from None
        record = next((r for r in self.issued() if r.serial == old.serial_number), None)
        if record is None:
            raise CertificateError(f"serial {old.serial_number:x} is not in this CA's records; nothing to renew")
        if record.revoked_at is not None:
            raise CertificateError(f"{record.name}'s certificate {record.serial:x} was revoked; issue a new one "
                                   "if it should come back")
        hosts: list[str] = []
        if record.role == Role.GATEWAY.value:
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
                [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        public = old.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise CertificateError("that certificate does not carry an ECDSA key")
        return self._certify(public, record.name, Role(record.role), organisation=record.organisation, days=days,
                             hosts=[h for h in hosts if h not in ("localhost", "127.0.0.1", "::1")])

    def _certify(self, public: ec.EllipticCurvePublicKey, name: str, role: Role, *, organisation: str,
                 days: int, hosts: Sequence[str]) -> bytes:
        check_name(name, "name")
        if organisation:
            check_name(organisation, "organisation")
        if not 1 <= days <= 825:
            raise InvalidArgument(f"a certificate lifetime of {days} days is outside 1..825", argument="days")
        now = _now()
        subject = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation or name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
        ])
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
        )
        if role is Role.GATEWAY:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [_san(h) for h in (*hosts, "localhost", "127.0.0.1", "::1")]), critical=False)
        cert = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(self._key, hashes.SHA256())
        records = self.issued() + [Issued(cert.serial_number, name, role.value, organisation or name,
                                          cert.not_valid_after_utc.timestamp())]
        self._save_index(records)
        return cert.public_bytes(serialization.Encoding.PEM)

    def revoke(self, name_or_serial: str, *, reason: str = "") -> list[Issued]:
        """Revoke every live certificate of a name (or one serial, in hex); rewrites the CRL."""
        records = self.issued()
        now = _now().timestamp()
        hit = [r for r in records if r.revoked_at is None and
               (r.name == name_or_serial or f"{r.serial:x}" == name_or_serial.lower())]
        if not hit:
            raise InvalidArgument(f"no live certificate named {name_or_serial!r}; `wharf ca list` shows them")
        serials = {r.serial for r in hit}
        records = [Issued(**{**r.__dict__, "revoked_at": now, "reason": reason}) if r.serial in serials else r
                   for r in records]
        self._save_index(records)
        self._write_crl([r for r in records if r.revoked_at is not None])
        return [r for r in records if r.serial in serials]

    def _write_crl(self, revoked: Sequence[Issued]) -> None:
        now = _now()
        # CRL numbers only grow (trust stores ignore a lower one): the last is kept beside the index
        # too, so a lost crl.pem does not restart them at 0.
        counter = self.dir / "crl-number"
        number = int(counter.read_text()) + 1 if counter.exists() else 0
        if self.crl_path.exists():
            number = max(number, _crl_number(x509.load_pem_x509_crl(self.crl_path.read_bytes())) + 1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject).last_update(now).next_update(now + dt.timedelta(days=CRL_DAYS))
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for r in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(r.serial)
                .revocation_date(dt.datetime.fromtimestamp(r.revoked_at or now.timestamp(), dt.timezone.utc))
                .build())
        crl = builder.sign(self._key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(self.crl_path)
        counter.write_text(str(number))


def make_request(name: str, directory: Path) -> Path:
    """A key (``key.pem``, 0600) and a certificate request (``request.csr``) for ``name`` in
    ``directory``; the operator issues from the request, so the key stays here."""
    check_name(name, "name")
    directory = Path(directory)
    if (directory / KEY_FILE).exists():
        raise InvalidArgument(f"{directory} already holds a key; refusing to overwrite it")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    write_private(directory / KEY_FILE, key_to_pem(key))
    (directory / "request.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return directory / "request.csr"


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


__all__ = [
    "Authority", "CertificateError", "Credentials", "Identity", "Issued", "Role", "RoleError", "SignatureError",
    "TrustStore", "check_name", "digest", "identity_of", "load_certificate", "make_request", "sign",
    "verify_signature", "write_private",
]
