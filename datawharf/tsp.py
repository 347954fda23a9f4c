"""RFC 3161 time-stamp requests and the status of their replies, in DER, by hand.

Only what anchoring the ledger needs: a ``TimeStampReq`` for a SHA-256
digest (version 1, the digest's MessageImprint, a nonce, certReq true) and
the ``PKIStatus`` of a ``TimeStampResp``. The token a time-stamping
authority returns is kept as it came; checking its CMS signature is the
auditor's, with the TSA's certificate, and is not done here.
"""

from __future__ import annotations

from datawharf.errors import WharfError

# AlgorithmIdentifier { id-sha256 (2.16.840.1.101.3.4.2.1), NULL }
_SHA256 = bytes.fromhex("300d06096086480165030402010500")
GRANTED = (0, 1)  # granted, grantedWithMods

__all__ = ["GRANTED", "TspError", "request", "response_status", "request_digest"]


class TspError(WharfError):
    """A time-stamp request or reply that is not what RFC 3161 says."""


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


def _int(n: int) -> bytes:
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")  # a leading 0 keeps it positive
    return _tlv(0x02, raw)


def request(digest: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq for a SHA-256 ``digest``."""
    if len(digest) != 32:
        raise TspError("a time-stamp request here is for a SHA-256 digest (32 bytes)")
    imprint = _tlv(0x30, _SHA256 + _tlv(0x04, digest))
    return _tlv(0x30, _int(1) + imprint + _int(nonce) + _tlv(0x01, b"\xff"))


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``at``."""
    if at + 2 > len(data):
        raise TspError("truncated DER")
    tag, first = data[at], data[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or at + n > len(data):
            raise TspError("bad DER length")
        length = int.from_bytes(data[at:at + n], "big")
        at += n
    if at + length > len(data):
        raise TspError("truncated DER")
    return tag, at, at + length


def response_status(reply: bytes) -> int:
    """The PKIStatus of a DER TimeStampResp (0 granted, 1 granted with modifications, 2+ refused)."""
    tag, start, _ = _read(reply, 0)
    if tag != 0x30:
        raise TspError("a TimeStampResp is a SEQUENCE")
    tag, start, _ = _read(reply, start)
    if tag != 0x30:
        raise TspError("a TimeStampResp starts with its PKIStatusInfo")
    tag, start, end = _read(reply, start)
    if tag != 0x02:
        raise TspError("a PKIStatusInfo starts with its status")
    return int.from_bytes(reply[start:end], "big")


def request_digest(req: bytes) -> bytes:
    """The digest a DER TimeStampReq asks to stamp (what a TSA, or its stand-in, reads)."""
    _, start, _ = _read(req, 0)
    _, _, after_version = _read(req, start)
    tag, start, _ = _read(req, after_version)
    if tag != 0x30:
        raise TspError("a TimeStampReq carries a MessageImprint after its version")
    _, _, after_alg = _read(req, start)
    tag, start, end = _read(req, after_alg)
    if tag != 0x04:
        raise TspError("a MessageImprint ends with the hashed message")
    return req[start:end]
