"""RFC 3161 requests and reply statuses, as DER, checked against hand-decoded structure."""

from __future__ import annotations

import hashlib

import pytest

from datawharf.tsp import TspError, request, request_digest, response_status


def test_a_request_carries_the_digest_under_sha256() -> None:
    d = hashlib.sha256(b"ledger head").digest()
    req = request(d, nonce=2**62 + 5)
    assert req[0] == 0x30 and request_digest(req) == d
    assert bytes.fromhex("0609608648016503040201") in req  # id-sha256
    assert req.endswith(b"\x01\x01\xff")  # certReq TRUE
    with pytest.raises(TspError):
        request(b"short", nonce=1)


def test_reply_status() -> None:
    granted = bytes.fromhex("3009" "3003020100" "0402abcd")
    refused = bytes.fromhex("3005" "3003020102")
    assert response_status(granted) == 0 and response_status(refused) == 2
    for bad in (b"", b"\x04\x00", bytes.fromhex("3003020100"), bytes.fromhex("30ff3003")):
        with pytest.raises(TspError):
            response_status(bad)
