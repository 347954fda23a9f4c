"""CKKS and BFV vectors through TenSEAL, for sums only.

Parameters come from a small table meeting 128-bit classical security per
the HomomorphicEncryption.org standard (N = 8192 allows log2 Q ≤ 218). A sum
needs no multiplication, so the modulus chain is one data prime plus the
special prime, no relinearisation or Galois keys are made, and a ciphertext
costs about 2 · 8 bytes per coefficient of one prime: ~32 bytes per CKKS
slot (N/2 slots) and ~16 per BFV slot (N slots).

- CKKS: scale 2^30 under a 60-bit data prime, so decrypted totals must stay
  within ±2^28 in real units; each holder checks its own figures against
  that range divided by the number of contributors. Error bound per slot:
  contributors × 2^-(scale_bits - 15) (fresh encryption noise, measured at
  ~2^-17 for this table, with a 4× margin).
- BFV: a 30-bit batching prime t ≡ 1 (mod 2N) as plaintext modulus; totals
  are exact within ±(t − 1)/2, checked per holder like CKKS.

The buyer keeps the secret context; holders and the gateway receive the
public context (public key only), which every role checks against the table
before use, as it does every ciphertext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tenseal as ts

from protocols.schemes import Backend, InvalidCiphertext, OutOfRange, PublicParams

MAX_CONTEXT_BYTES = 1 << 20


@dataclass(frozen=True)
class HeParams:
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    plain_modulus: int = 0  # BFV
    scale_bits: int = 0  # CKKS

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // (2 if self.plain_modulus == 0 else 1)


# 1073692673 = 65535 · 16384 + 1 is prime, so it supports batching at N = 8192.
TABLE: dict[Backend, HeParams] = {
    Backend.CKKS: HeParams(8192, (60, 60), scale_bits=30),
    Backend.BFV: HeParams(8192, (60, 60), plain_modulus=1073692673),
}
_MAX_LOG_Q = {4096: 109, 8192: 218, 16384: 438}


def ckks_range(params: PublicParams) -> float:
    """Largest |real value| a CKKS total may reach."""
    return float(2 ** (params.coeff_mod_bit_sizes[0] - params.scale_bits - 2))


def ckks_error_bound(params: PublicParams, contributors: int) -> float:
    return contributors * 2.0 ** -(params.scale_bits - 15)


def table_params(backend: Backend) -> HeParams:
    p = TABLE[backend]
    assert sum(p.coeff_mod_bit_sizes) <= _MAX_LOG_Q[p.poly_modulus_degree]
    return p


def _ciphertext_count(params: PublicParams) -> int:
    slots = params.poly_modulus_degree // (2 if params.backend is Backend.CKKS else 1)
    return -(-params.length // slots)


class TensealEncryptor:
    """Holder and gateway side: the public context only, checked on load."""

    def __init__(self, params: PublicParams, weights: Sequence[int] = ()) -> None:
        if weights and len(weights) != params.length:
            raise OutOfRange(f"{len(weights)} weights for {params.length} figures")
        self.weights = tuple(weights)
        if params.backend not in TABLE:
            raise InvalidCiphertext(f"backend {params.backend.value} is not a TenSEAL scheme")
        want = table_params(params.backend)
        if (params.poly_modulus_degree, params.coeff_mod_bit_sizes, params.plain_modulus, params.scale_bits) != (
            want.poly_modulus_degree, want.coeff_mod_bit_sizes, want.plain_modulus, want.scale_bits
        ):
            raise InvalidCiphertext(
                f"{params.backend.value} parameters do not match the table "
                f"(N={want.poly_modulus_degree}, q={list(want.coeff_mod_bit_sizes)})"
            )
        if not params.public_context or len(params.public_context) > MAX_CONTEXT_BYTES:
            raise InvalidCiphertext(
                f"the public context must be 1 to {MAX_CONTEXT_BYTES} bytes, got {len(params.public_context)}"
            )
        self.params = params
        self.ckks = params.backend is Backend.CKKS
        self.slots = want.slots
        try:
            ctx = ts.context_from(params.public_context)
        except Exception as exc:
            raise InvalidCiphertext(f"the public context does not parse: {exc}") from None
        self._check_context(ctx, want)
        self.ctx = ctx

    def _check_context(self, ctx: ts.Context, want: HeParams) -> None:
        if ctx.has_secret_key() or ctx.is_private():
            raise InvalidCiphertext("the public context carries a secret key; it must not")
        if not ctx.has_public_key():
            raise InvalidCiphertext("the public context carries no public key")
        if ctx.has_relin_keys() or ctx.has_galois_keys():
            raise InvalidCiphertext("the public context carries evaluation keys a sum does not need")
        data = ctx.seal_context().data
        first = data.first_context_data()
        parms = first.parms()
        scheme = "CKKS" if self.ckks else "BFV"
        if parms.scheme().name != scheme or parms.poly_modulus_degree() != want.poly_modulus_degree:
            raise InvalidCiphertext("the public context is for another scheme or degree")
        if (
            first.total_coeff_modulus_bit_count() != want.coeff_mod_bit_sizes[0]
            or data.key_context_data().total_coeff_modulus_bit_count() != sum(want.coeff_mod_bit_sizes)
        ):
            raise InvalidCiphertext("the public context's coefficient modulus does not match the table")
        if not self.ckks and 2 * first.plain_upper_half_threshold() - 1 != want.plain_modulus:
            raise InvalidCiphertext("the public context's plaintext modulus does not match the table")
        self._parms_id = first.parms_id()

    def _values(self, figures: Sequence[int]) -> np.ndarray:
        if len(figures) != self.params.length:
            raise OutOfRange(f"{len(figures)} figures for a job expecting {self.params.length}")
        share = max(1, self.params.max_contributors)
        if self.ckks:
            weights = np.asarray(self.weights or [1] * len(figures), dtype=np.float64)
            values = np.asarray([float(f) for f in figures], dtype=np.float64) / weights
            limit = ckks_range(self.params) / share
            over = np.flatnonzero(np.abs(values) > limit)
            if over.size:
                raise OutOfRange(
                    f"figure {int(over[0])} is beyond the CKKS range ±{limit:.6g} "
                    f"for {share} holders; use the paillier-packed backend"
                )
            return values
        limit = (self.params.plain_modulus - 1) // 2 // share
        for i, f in enumerate(figures):
            if abs(f) > limit:
                raise OutOfRange(
                    f"figure {i} is beyond the BFV range ±{limit} for {share} holders; "
                    "use the paillier-packed backend"
                )
        return np.asarray(figures, dtype=np.int64)

    def encrypt(self, figures: Sequence[int]) -> list[bytes]:
        values = self._values(figures)
        out = []
        for start in range(0, len(values), self.slots):
            part = values[start : start + self.slots].tolist()
            vec = ts.ckks_vector(self.ctx, part) if self.ckks else ts.bfv_vector(self.ctx, part)
            out.append(vec.serialize())
        return out

    def _load(self, raw: bytes, expected_size: int, i: int):  # type: ignore[no-untyped-def]
        try:
            vec = ts.ckks_vector_from(self.ctx, raw) if self.ckks else ts.bfv_vector_from(self.ctx, raw)
        except Exception as exc:
            raise InvalidCiphertext(f"ciphertext {i} does not parse as a {self.params.backend.value} vector: {exc}") from None
        if vec.size() != expected_size:
            raise InvalidCiphertext(f"ciphertext {i} holds {vec.size()} values, expected {expected_size}")
        for c in vec.ciphertext():
            if (
                c.poly_modulus_degree() != self.params.poly_modulus_degree
                or c.size() != 2
                or c.coeff_modulus_size() != 1
                or c.parms_id() != self._parms_id
            ):
                raise InvalidCiphertext(f"ciphertext {i} was not made with this job's parameters")
            if self.ckks and abs(c.scale - 2.0**self.params.scale_bits) > 1e-6 * c.scale:
                raise InvalidCiphertext(f"ciphertext {i} has scale {c.scale}, expected 2^{self.params.scale_bits}")
        return vec

    def parse(self, ciphertexts: Sequence[bytes]) -> list:  # type: ignore[type-arg]
        expected = _ciphertext_count(self.params)
        if len(ciphertexts) != expected:
            raise InvalidCiphertext(f"expected {expected} ciphertexts, got {len(ciphertexts)}")
        sizes = [min(self.slots, self.params.length - i * self.slots) for i in range(expected)]
        return [self._load(raw, size, i) for i, (raw, size) in enumerate(zip(ciphertexts, sizes))]

    def check(self, ciphertexts: Sequence[bytes]) -> None:
        self.parse(ciphertexts)

    def combine(self, contributions: Sequence[Sequence[bytes]], *, rerandomise: bool = True) -> list[bytes]:
        totals = None
        for contribution in contributions:
            vecs = self.parse(contribution)
            if totals is None:
                totals = vecs
            else:
                for t, v in zip(totals, vecs):
                    t.add_(v)
        if totals is None:
            raise InvalidCiphertext("nothing to combine: no contributions")
        if rerandomise:
            # A fresh encryption of zero hides which holder's noise is which.
            for t in totals:
                zeros = [0.0] * t.size() if self.ckks else [0] * t.size()
                t.add_(ts.ckks_vector(self.ctx, zeros) if self.ckks else ts.bfv_vector(self.ctx, zeros))
        return [t.serialize() for t in totals]


class TensealScheme:
    """The buyer's side: the secret context stays here."""

    def __init__(self, backend: Backend, length: int, max_contributors: int, *, weights: Sequence[int] = ()) -> None:
        p = table_params(backend)
        if backend is Backend.CKKS:
            ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=p.poly_modulus_degree,
                             coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes))
            ctx.global_scale = 2.0**p.scale_bits
        else:
            ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=p.poly_modulus_degree,
                             plain_modulus=p.plain_modulus, coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes))
        self._ctx = ctx
        public = ctx.copy()
        public.make_context_public()
        blob = public.serialize(save_public_key=True, save_secret_key=False,
                                save_galois_keys=False, save_relin_keys=False)
        self.public = PublicParams(
            backend=backend,
            length=length,
            max_contributors=max_contributors,
            public_context=blob,
            poly_modulus_degree=p.poly_modulus_degree,
            coeff_mod_bit_sizes=p.coeff_mod_bit_sizes,
            plain_modulus=p.plain_modulus,
            scale_bits=p.scale_bits,
        )
        self.weights = tuple(weights) if backend is Backend.CKKS else ()
        self._enc = TensealEncryptor(self.public, self.weights)

    def decrypt(self, ciphertexts: Sequence[bytes], contributors: int) -> list[int] | list[float]:
        vecs = self._enc.parse(ciphertexts)
        out: list = []  # type: ignore[type-arg]
        for v in vecs:
            v.link_context(self._ctx)
            out.extend(v.decrypt())
        if self._enc.ckks:
            weights = self.weights or (1,) * len(out)
            return [float(x) * w for x, w in zip(out, weights)]
        return [int(x) for x in out]
