"""A buyer that reuses its Paillier key sends the same modulus and proof each time, so holders check the
proof once; by default every job has a key of its own."""

from __future__ import annotations

import pytest

from buyers.client import Client
from datawharf.errors import InvalidArgument
from protocols.schemes import Backend
from protocols.schemes import paillier as scheme


def test_a_reused_key_carries_the_same_proof_and_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client("127.0.0.1:1", caller="buyer", insecure=True, key_reuse_s=600)
    key = client._paillier_key(2048)
    assert client._paillier_key(2048) is key
    first = scheme.PaillierScheme(Backend.PAILLIER_PACKED, 4, 3, keypair=key).public
    second = scheme.PaillierScheme(Backend.PAILLIER_PACKED, 4, 3, keypair=key).public
    assert first.paillier_n == second.paillier_n and first.modulus_proof == second.modulus_proof
    checks: list[int] = []
    real = scheme.modulus_proof.verify
    monkeypatch.setattr(scheme.modulus_proof, "verify", lambda n, proof: (checks.append(n), real(n, proof)))
    scheme.verify_public_key(first)
    scheme.verify_public_key(second)
    assert checks == [first.paillier_n]  # the holder's second check is its cache's


def test_by_default_each_job_gets_a_fresh_key_and_reuse_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Client("127.0.0.1:1", caller="buyer", insecure=True)._paillier_key(2048) is None
    client = Client("127.0.0.1:1", caller="buyer", insecure=True, key_reuse_s=5)
    now = [1000.0]
    monkeypatch.setattr("buyers.client.time.monotonic", lambda: now[0])
    key = client._paillier_key(2048)
    now[0] += 6
    assert client._paillier_key(2048) is not key
    with pytest.raises(InvalidArgument, match="key_reuse_s"):
        Client("127.0.0.1:1", caller="buyer", insecure=True, key_reuse_s=-1)
