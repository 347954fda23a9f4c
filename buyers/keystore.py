"""The buyer's job keys on disk, so that a job's result can be read from another process.

    store = Keystore(Keystore.default_dir(), passphrase)
    store.save(job, gateway="127.0.0.1:50051")        # after Client.submit
    stored = store.load(job_id)                        # in a new process
    answer = client.result(stored.job)

One file per job (``<job id>.key``, mode 0600) in a directory of mode 0700.
Each file is ``MAGIC || salt (16) || nonce (12) || AES-256-GCM ciphertext``;
the key is scrypt(passphrase, salt) and the job id is the associated data,
so a file renamed to another job's name does not open. Inside is JSON: the
gateway, job and request ids, the serialized AggregateSpec (public
parameters and modulus proof), the Paillier primes, the body digest and
min_parties. Only Paillier jobs are stored: TenSEAL has no clean way to
rebuild this package's scheme from a serialized secret context.

Errors: ``KeystoreError`` (a ``WharfError``) names the file and the reason;
a wrong passphrase and a tampered file are one error, as GCM cannot tell them apart.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from google.protobuf.message import DecodeError

from buyers.client import SubmittedJob
from datawharf.errors import WharfError
from datawharf.model import JobView
from datawharf.serde import aggregate_from_proto, aggregate_to_proto
from datawharf.states import JobState
from datawharf.v1 import common_pb2
from protocols.aggregate import Buyer
from protocols.schemes import Backend

__all__ = ["Keystore", "KeystoreError", "StoredJob"]

MAGIC = b"WHARFKS1"
_SALT, _NONCE = 16, 12
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1  # ~32 MiB and ~0.1 s per file
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SUFFIX = ".key"


class KeystoreError(WharfError):
    """A keystore file or directory cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class StoredJob:
    gateway: str
    job: SubmittedJob
    where: str = ""


class Keystore:
    """Job keys under ``directory``, encrypted under ``passphrase``.

    Args:
        directory: created with mode 0700 when missing.
        passphrase: the buyer's secret; each file's key is stretched from it with scrypt and a fresh salt.
            None opens no file: such a keystore can only list and forget jobs.
    """

    def __init__(self, directory: Path | str, passphrase: str | None) -> None:
        if passphrase == "":
            raise KeystoreError("the keystore passphrase is empty")
        self.directory = Path(directory)
        self._passphrase = None if passphrase is None else passphrase.encode()

    @staticmethod
    def default_dir() -> Path:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "wharf" / "keystore"

    def path(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise KeystoreError(f"{job_id!r} is not a job id")
        return self.directory / f"{job_id}{_SUFFIX}"

    def _key(self, salt: bytes) -> bytes:
        if self._passphrase is None:
            raise KeystoreError(f"{self.directory}: opened without a passphrase, so no job key can be read or written")
        return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(self._passphrase)

    def save(self, job: SubmittedJob, gateway: str, *, where: str = "") -> Path:
        """Store a submitted job's keys. Raises ``KeystoreError`` for a non-Paillier job or an unwritable file."""
        if job.buyer.backend not in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
            raise KeystoreError(f"only Paillier jobs can be kept in the keystore; job {job.job_id} uses "
                                f"{job.buyer.backend.value} (choose --backend paillier or paillier-packed)")
        p, q = job.buyer.paillier_primes
        body = json.dumps({
            "gateway": gateway, "job_id": job.job_id, "request_id": job.request_id,
            "spec": base64.b64encode(aggregate_to_proto(job.spec).SerializeToString()).decode(),
            "p": format(p, "x"), "q": format(q, "x"), "body_digest": job.body_digest.hex(),
            "min_parties": job.min_parties, "where": where,
        }).encode()
        path = self.path(job.job_id)
        salt, nonce = secrets.token_bytes(_SALT), secrets.token_bytes(_NONCE)
        blob = MAGIC + salt + nonce + AESGCM(self._key(salt)).encrypt(nonce, body, job.job_id.encode())
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise KeystoreError(f"{path}: cannot write it: {exc.strerror or exc}") from None
        return path

    def load(self, job_id: str) -> StoredJob:
        """The stored job, ready for ``Client.result``.

        Raises:
            KeystoreError: no such file, or it does not open (wrong passphrase or tampered), or it is malformed.
        """
        path = self.path(job_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(f"{path}: no stored key for job {job_id} in this keystore") from None
        except OSError as exc:
            raise KeystoreError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        head = len(MAGIC) + _SALT + _NONCE
        if len(blob) <= head + 16 or not blob.startswith(MAGIC):
            raise KeystoreError(f"{path}: not a wharf keystore file")
        salt, nonce = blob[len(MAGIC):len(MAGIC) + _SALT], blob[len(MAGIC) + _SALT:head]
        try:
            body = AESGCM(self._key(salt)).decrypt(nonce, blob[head:], job_id.encode())
        except InvalidTag:
            raise KeystoreError(f"{path}: does not open: wrong passphrase, or the file was altered") from None
        try:
            d = json.loads(body)
            spec = aggregate_from_proto(common_pb2.AggregateSpec.FromString(base64.b64decode(d["spec"])))
            buyer = Buyer.restore(spec.request, int(d["p"], 16), int(d["q"], 16))
            job = SubmittedJob(job_id=d["job_id"], request_id=d["request_id"], buyer=buyer, spec=spec,
                             view=JobView(d["job_id"], d["request_id"], "", JobState.PENDING, "", spec,
                                          int(d["min_parties"]), 0.0, 0.0),  # a placeholder: result() asks
                             body_digest=bytes.fromhex(d["body_digest"]), min_parties=int(d["min_parties"]))
        except (ValueError, KeyError, TypeError, WharfError, DecodeError) as exc:
            raise KeystoreError(f"{path}: malformed contents: {exc}") from None
        if d["job_id"] != job_id:
            raise KeystoreError(f"{path}: holds job {d['job_id']}, not {job_id}")
        return StoredJob(d["gateway"], job, d.get("where", ""))

    def job_ids(self) -> list[str]:
        """The stored jobs' ids, sorted. Raises ``KeystoreError`` when the directory cannot be read."""
        if not self.directory.exists():
            return []
        try:
            return sorted(p.name[:-len(_SUFFIX)] for p in self.directory.iterdir()
                          if p.name.endswith(_SUFFIX) and not p.name.startswith("."))
        except OSError as exc:
            raise KeystoreError(f"{self.directory}: cannot list it: {exc.strerror or exc}") from None

    def forget(self, job_id: str) -> None:
        """Overwrite the job's file with random bytes, then delete it. Raises ``KeystoreError`` if absent."""
        path = self.path(job_id)
        try:
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(secrets.token_bytes(size))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
        except FileNotFoundError:
            raise KeystoreError(f"{path}: no stored key for job {job_id} in this keystore") from None
        except OSError as exc:
            raise KeystoreError(f"{path}: cannot delete it: {exc.strerror or exc}") from None
