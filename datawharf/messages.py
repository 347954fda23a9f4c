"""What the gateway and a party node say to each other, as domain messages.

The job logic at the gateway speaks only these; the one place that turns
them into ``party_pb2`` messages is ``datawharf.serde`` (``*_to_proto`` /
``*_from_proto``), called by the gRPC seam.
"""

from __future__ import annotations

from dataclasses import dataclass

from datawharf.model import AggregateJob, PsiJob


@dataclass(frozen=True)
class TaskOffer:
    """A task for one holder: the buyer's spec and the job's terms."""

    task_id: str
    job_id: str
    buyer: str
    min_parties: int
    deadline: float
    spec: AggregateJob | PsiJob
    cached_tables: tuple[str, ...] = ()  # unbalanced PSI: epochs whose table the gateway holds
    signed: bytes = b""  # the buyer's SignedJob as it submitted it; the holder checks it, not ``spec``
    crl: bytes = b""     # the newest revocation list the gateway has (PEM, signed by the CA)
    head: tuple[int, str, str] | None = None  # the ledger's (seq, hash, signature) when offered


@dataclass(frozen=True)
class CancelTask:
    task_id: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the holder sent was not accepted; the message says why."""

    task_id: str
    message: str


@dataclass(frozen=True)
class StagePiece:
    """One bounded piece of a PSI stage (whole items)."""

    stage: str
    seq: int
    data: bytes
    last: bool


@dataclass(frozen=True)
class SetForHolder:
    """A piece of the buyer's blinded set, relayed to the holder of ``task_id``."""

    task_id: str
    piece: StagePiece


ToParty = TaskOffer | CancelTask | Notice | SetForHolder


@dataclass(frozen=True)
class HolderUpload:
    """A holder's PSI answer as it streams in: pieces of its stages, then ``done``."""

    task_id: str
    piece: StagePiece | None = None
    done: bool = False
    min_intersection: int = 0  # set with done: the holder's minimum, enforced by the gateway
    table_epoch: str = ""      # set with done, unbalanced: the epoch its evaluations belong to
    receipt: bytes = b""       # set with done: the holder's ContributionReceipt over all it uploaded


__all__ = ["CancelTask", "HolderUpload", "Notice", "SetForHolder", "StagePiece", "TaskOffer", "ToParty"]
