"""What a holder checks before computing anything: the job is the buyer's.

The gateway relays the buyer's signed job; this module opens it with the
exchange CA (chain, lifetime, revocation, role buyer), checks it names this
holder, that the gateway's account of it agrees, that it is not a replay
under another job id, and that any Paillier modulus in it is well formed
and proven so. The task handed on carries the spec *as the buyer signed it*.
A refusal says what was wrong; the holder's operator sees it in the log and
the buyer in the job's reasons.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Callable
from dataclasses import dataclass, replace

from datawharf import signing
from datawharf.errors import WharfError
from datawharf.messages import TaskOffer
from datawharf.model import AggregateJob, PsiJob
from datawharf.pki import Credentials, TrustStore, digest
from datawharf.serde import aggregate_from_proto, psi_from_proto
from protocols.schemes import Backend, SchemeError
from protocols.schemes import paillier

log = logging.getLogger("datawharf.party")

_REMEMBERED = 100_000  # (buyer, nonce) pairs kept to spot a replayed signature
# A signed job older than this is refused, so a replay after the holder forgets its nonces (a
# restart) is bounded too: a job's deadline is at most a day after submission.
MAX_JOB_AGE_S = 24 * 3600 + 600
MAX_CLOCK_SKEW_S = 600


@dataclass(frozen=True)
class Checked:
    task: TaskOffer      # with the spec and min_parties of the signed body
    body_digest: bytes   # what this holder's receipt refers to; empty when insecure
    set_digest: bytes = b""  # PSI: the buyer's signed digest of its blinded set

    def check_set_digest(self, set_digest: bytes) -> None:
        """``check_set`` for a set hashed as it arrived: ``set_digest`` is its SHA-256."""
        if not self.body_digest:
            return
        if not self.set_digest:
            raise Refused("the buyer's signed job does not fix its set; this holder answers only signed sets",
                          "unsigned_set")
        if set_digest != self.set_digest:
            raise Refused("the set the gateway relayed is not the one the buyer signed", "bad_signature")

    def check_set(self, data: bytes) -> None:
        """Refused unless ``data`` (the buyer's stage A as relayed) is the set the buyer signed."""
        if not self.body_digest:
            return
        if not self.set_digest:
            raise Refused("the buyer's signed job does not fix its set; this holder answers only signed sets",
                          "unsigned_set")
        if digest(data) != self.set_digest:
            raise Refused("the set the gateway relayed is not the one the buyer signed", "bad_signature")


class Refused(Exception):
    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class JobVerifier:
    def __init__(self, name: str, creds: Credentials | None, trust: TrustStore | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.clock = clock
        self.creds = creds
        self.trust = trust
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()

    def check(self, task: TaskOffer) -> Checked:
        """The task to compute, or Refused with the reason (never another exception: whatever a
        gateway sends, the holder answers it and keeps its stream)."""
        try:
            return self._check(task)
        except Refused:
            raise
        except Exception as exc:
            log.warning("task %s: unreadable signed job", task.task_id, exc_info=True)
            raise Refused(f"the signed job cannot be read: {exc}", "bad_signature") from None

    def _check(self, task: TaskOffer) -> Checked:
        if self.trust is None:  # an --insecure holder takes the gateway's word
            _check_keys(task.spec)
            return Checked(task, b"")
        try:
            self.trust.refresh()  # the holder's own copy of the CA's CRL, re-read when it changes
        except WharfError as exc:
            log.warning("cannot read the revocation list %s: %s", self.trust.crl_path, exc.message)
        self._take_crl(task.crl)
        if not task.signed:
            raise Refused("the job is not signed by its buyer; this holder computes only on signed jobs",
                          "unsigned_job")
        try:
            opened = signing.open_job(task.signed, self.trust)
        except WharfError as exc:
            raise Refused(f"the buyer's signature does not hold: {exc.message}", "bad_signature") from None
        body = opened.body
        if body.buyer != task.buyer:
            raise Refused(f"the gateway says the buyer is {task.buyer!r} but the job is signed by {body.buyer!r}",
                          "bad_signature")
        age = self.clock() - body.signed_at
        if not -MAX_CLOCK_SKEW_S <= age <= MAX_JOB_AGE_S:
            raise Refused(f"the job was signed {age / 3600:.1f} h ago; a signed job is good for "
                          f"{MAX_JOB_AGE_S / 3600:.0f} h (a clock far off, or a replay)", "stale_job")
        if body.parties and self.name not in body.parties:
            raise Refused(f"the buyer asked {', '.join(body.parties)}, not this holder", "not_asked")
        key = (body.buyer, body.nonce)
        first = self._seen.setdefault(key, task.job_id)
        if first != task.job_id:
            raise Refused(f"the buyer's signed job {body.nonce!r} was already used for job {first}; "
                          "a signature is good for one job", "replayed_job")
        self._seen.move_to_end(key)
        if len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        try:
            spec: AggregateJob | PsiJob = (psi_from_proto(body.psi) if body.WhichOneof("spec") == "psi"
                                           else aggregate_from_proto(body.aggregate))
        except WharfError as exc:
            raise Refused(f"the signed job cannot be read: {exc.message}", "bad_spec") from None
        _check_keys(spec)
        return Checked(replace(task, spec=spec, min_parties=max(1, body.min_parties)), opened.body_digest,
                       body.buyer_set_digest)

    def _take_crl(self, pem: bytes) -> None:
        if not pem or self.trust is None:
            return
        try:
            if self.trust.add_crl(pem):
                log.info("revocation list updated from the gateway")
        except WharfError as exc:
            log.warning("ignored a revocation list from the gateway: %s", exc.message)


def _check_keys(spec: AggregateJob | PsiJob) -> None:
    if not isinstance(spec, AggregateJob):
        return
    if spec.encryption.backend in (Backend.PAILLIER, Backend.PAILLIER_PACKED):
        try:
            paillier.verify_public_key(spec.encryption)
        except SchemeError as exc:
            raise Refused(f"the buyer's Paillier key is refused: {exc}", "weak_key") from None
