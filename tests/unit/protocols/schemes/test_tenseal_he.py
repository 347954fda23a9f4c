"""CKKS and BFV vectors: sums, error bounds, and every kind of mismatched input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from protocols.schemes import Backend, InvalidCiphertext, OutOfRange
from protocols.schemes.tenseal_he import TensealEncryptor, TensealScheme, ckks_error_bound


@pytest.fixture(scope="module")
def ckks() -> TensealScheme:
    return TensealScheme(Backend.CKKS, 5000, 4, weights=[100] * 5000)


@pytest.fixture(scope="module")
def bfv() -> TensealScheme:
    return TensealScheme(Backend.BFV, 9000, 4)


def test_ckks_sum_within_the_stated_bound(ckks: TensealScheme) -> None:
    rng = np.random.default_rng(5)
    holders = [rng.integers(-10**6, 10**6, 5000).tolist() for _ in range(4)]  # cents
    enc = TensealEncryptor(ckks.public, ckks.weights)
    total = enc.combine([enc.encrypt(h) for h in holders])
    got = np.array(ckks.decrypt(total, 4)) / 100
    want = np.sum(np.array(holders), axis=0) / 100
    assert np.max(np.abs(got - want)) <= ckks_error_bound(ckks.public, 4)


def test_bfv_exact_across_ciphertexts(bfv: TensealScheme) -> None:
    rng = np.random.default_rng(6)
    limit = (bfv.public.plain_modulus - 1) // 2 // 4
    holders = [rng.integers(-limit, limit, 9000).tolist() for _ in range(4)]
    holders[0][:2] = [limit, -limit]
    enc = TensealEncryptor(bfv.public)
    cts = [enc.encrypt(h) for h in holders]
    assert len(cts[0]) == 2  # 9000 values need two 8192-slot ciphertexts
    assert bfv.decrypt(enc.combine(cts), 4) == np.sum(np.array(holders), axis=0).tolist()


def test_bytes_per_value(ckks: TensealScheme, bfv: TensealScheme) -> None:
    c = TensealEncryptor(ckks.public).encrypt([1] * 5000)
    b = TensealEncryptor(bfv.public).encrypt([1] * 9000)
    assert sum(map(len, c)) / 8192 < 40  # two half-full 4096-slot ciphertexts
    assert sum(map(len, b)) / (2 * 8192) < 20


def test_range_checks(ckks: TensealScheme, bfv: TensealScheme) -> None:
    with pytest.raises(OutOfRange, match="CKKS range"):
        TensealEncryptor(ckks.public, ckks.weights).encrypt([10**12] + [0] * 4999)
    with pytest.raises(OutOfRange, match="BFV range"):
        TensealEncryptor(bfv.public).encrypt([bfv.public.plain_modulus] + [0] * 8999)
    with pytest.raises(OutOfRange, match="expecting 9000"):
        TensealEncryptor(bfv.public).encrypt([1])


def test_public_context_holds_no_secret(ckks: TensealScheme) -> None:
    import tenseal as ts

    ctx = ts.context_from(ckks.public.public_context)
    assert ctx.is_public() and not ctx.has_secret_key() and not ctx.has_relin_keys() and not ctx.has_galois_keys()


def test_mismatched_parameters_are_refused(ckks: TensealScheme, bfv: TensealScheme) -> None:
    with pytest.raises(InvalidCiphertext, match="do not match the table"):
        TensealEncryptor(replace(ckks.public, poly_modulus_degree=16384))
    with pytest.raises(InvalidCiphertext, match="another scheme"):
        TensealEncryptor(replace(ckks.public, public_context=bfv.public.public_context))
    with pytest.raises(InvalidCiphertext, match="does not parse"):
        TensealEncryptor(replace(ckks.public, public_context=b"garbage"))
    secret = ckks._ctx.serialize(save_secret_key=True)
    with pytest.raises(InvalidCiphertext, match="secret key"):
        TensealEncryptor(replace(ckks.public, public_context=secret))


def test_corrupted_and_foreign_ciphertexts_are_refused(ckks: TensealScheme, bfv: TensealScheme) -> None:
    enc = TensealEncryptor(ckks.public)
    good = enc.encrypt([1] * 5000)
    with pytest.raises(InvalidCiphertext, match="does not parse"):
        enc.check([good[0][:-100], good[1]])
    with pytest.raises(InvalidCiphertext, match="expected 2"):
        enc.check(good[:1])
    with pytest.raises(InvalidCiphertext):
        enc.check([good[1], good[0]])  # sizes 904 and 4096 swapped
    foreign = TensealEncryptor(bfv.public).encrypt([1] * 9000)
    with pytest.raises(InvalidCiphertext):
        enc.check(foreign)
    # A job's checker never crashes on a total it did not expect either.
    with pytest.raises(InvalidCiphertext):
        enc.combine([good, foreign])


def test_range_errors_name_the_figure_not_its_value(bfv: TensealScheme) -> None:
    with pytest.raises(OutOfRange) as err:
        TensealEncryptor(bfv.public).encrypt([0, 987654321987] + [0] * 8998)
    assert "figure 1" in str(err.value) and "987654321987" not in str(err.value)
