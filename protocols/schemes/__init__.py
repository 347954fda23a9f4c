"""Additively homomorphic schemes behind one small interface.

    Scheme (buyer side: holds the secret)      .public → PublicParams
    Encryptor (holder side, from PublicParams) .encrypt(figures) → ciphertexts
    Aggregator (gateway side)                  .check(cts) / .combine([cts, ...])
    Scheme.decrypt(cts, contributors) → totals

Backends: ``paillier`` (one phe ciphertext per figure, the naive baseline),
``paillier-packed`` (many slots per plaintext, DJN randomiser), ``bfv`` and
``ckks`` (TenSEAL SIMD vectors). Figures are always integers in fixed point;
CKKS encrypts each divided by its unit (``protocols.aggregate.weights``) so
that the values it carries stay small.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Backend(str, enum.Enum):
    PAILLIER = "paillier"
    PAILLIER_PACKED = "paillier-packed"
    BFV = "bfv"
    CKKS = "ckks"

    @property
    def exact(self) -> bool:
        return self is not Backend.CKKS


class SchemeError(ValueError):
    """Base of the schemes' errors."""


class InvalidCiphertext(SchemeError):
    """A ciphertext or context does not match the job's parameters."""


class OutOfRange(SchemeError):
    """A figure does not fit the job's encoding (slot width, plaintext modulus, CKKS range)."""


class WeakKey(SchemeError):
    """Key or parameters below the required security."""


@dataclass(frozen=True)
class PublicParams:
    """Everything a holder or the gateway needs; nothing that decrypts."""

    backend: Backend
    length: int  # figures per contribution
    max_contributors: int
    paillier_n: int = 0
    slot_bits: int = 0
    public_context: bytes = field(default=b"", repr=False)
    poly_modulus_degree: int = 0
    coeff_mod_bit_sizes: tuple[int, ...] = ()
    plain_modulus: int = 0
    scale_bits: int = 0
    # Paillier: protocols.modulus_proof's proof that paillier_n is a Paillier–Blum modulus.
    modulus_proof: bytes = field(default=b"", repr=False)
