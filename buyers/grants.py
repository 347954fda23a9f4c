"""Data-use grants from the caller's side: buyers request, holders decide, anyone lists their own.

The connection is the same mutual-TLS channel a buyer uses; a holder opens it
with its party certificate to list and decide the grants addressed to it.
Approving signs the grant's canonical terms with the holder's key here; the
key never leaves the process.
"""

from __future__ import annotations

import time
from typing import Sequence

from buyers.connection import Connection
from datawharf.errors import InvalidArgument
from datawharf.grants import GrantTerms, check_request, sign_terms
from datawharf.v1 import grants_pb2, grants_pb2_grpc

STATES = {"pending": grants_pb2.GRANT_STATE_PENDING, "approved": grants_pb2.GRANT_STATE_APPROVED,
          "rejected": grants_pb2.GRANT_STATE_REJECTED, "revoked": grants_pb2.GRANT_STATE_REVOKED}
STATE_NAMES = {v: k for k, v in STATES.items()}


class GrantClient(Connection):
    @property
    def grants_stub(self) -> grants_pb2_grpc.GrantServiceStub:
        return grants_pb2_grpc.GrantServiceStub(self._channel)

    def request(self, dataset: str, purpose: str, statistics: Sequence[str], until: float, max_jobs: int, *,
                budget: float = 0.0, parties: Sequence[str] = ()) -> list[grants_pb2.Grant]:
        """Ask every holder of ``dataset`` (or ``parties``) for a grant; one PENDING grant per holder."""
        req = grants_pb2.GrantRequest(dataset=dataset, purpose=purpose, statistics=list(statistics), until=until,
                                      max_jobs=max_jobs, budget=budget, parties=list(parties))
        return list(self.call(self.grants_stub.RequestGrant, req).grants)

    def list(self, state: str = "") -> list[grants_pb2.Grant]:
        """Your grants (a buyer), those addressed to you (a holder), or all (an operator)."""
        if state and state not in STATES:
            raise InvalidArgument(f"state must be one of {', '.join(STATES)}", argument="state")
        req = grants_pb2.ListGrantsRequest(state=STATES.get(state, grants_pb2.GRANT_STATE_UNSPECIFIED))
        return list(self.call(self.grants_stub.ListGrants, req).grants)

    def find(self, grant_id: str) -> grants_pb2.Grant:
        for g in self.list():
            if g.id == grant_id:
                return g
        raise InvalidArgument(f"no grant {grant_id!r} is addressed to you; see `wharf grant list`")

    def approve(self, grant: grants_pb2.Grant) -> tuple[grants_pb2.Grant, GrantTerms, bytes]:
        """Sign the grant's terms with the holder's key and send the signature; the signed terms to keep."""
        if self.identity is None:
            raise InvalidArgument("approving a grant signs it: connect with your party certificate")
        terms = GrantTerms.parse(grant.terms)
        # The terms come from the gateway: check they are the grant asked about and a well-formed request
        # before signing anything (a gateway may not slip other terms under a familiar id).
        if terms.id != grant.id:
            raise InvalidArgument(f"the gateway's grant {grant.id!r} carries the terms of {terms.id!r}; not signed")
        check_request(terms.dataset, terms.purpose, terms.statistics, terms.until, terms.max_jobs, terms.budget,
                      now=min(time.time(), terms.until - 1))
        if grant.buyer and grant.buyer != terms.buyer:
            raise InvalidArgument(f"grant {grant.id!r} is listed for {grant.buyer!r} but its terms name "
                                  f"{terms.buyer!r}; not signed")
        signature = sign_terms(self.identity, terms)
        decision = grants_pb2.GrantDecision(id=grant.id, action=grants_pb2.GrantDecision.ACTION_APPROVE,
                                            signature=signature)
        return self.call(self.grants_stub.DecideGrant, decision), terms, signature

    def reject(self, grant_id: str, reason: str) -> grants_pb2.Grant:
        return self.call(self.grants_stub.DecideGrant, grants_pb2.GrantDecision(
            id=grant_id, action=grants_pb2.GrantDecision.ACTION_REJECT, reason=reason))

    def revoke(self, grant_id: str, reason: str) -> grants_pb2.Grant:
        return self.call(self.grants_stub.DecideGrant, grants_pb2.GrantDecision(
            id=grant_id, action=grants_pb2.GrantDecision.ACTION_REVOKE, reason=reason))


__all__ = ["GrantClient", "STATES", "STATE_NAMES"]
