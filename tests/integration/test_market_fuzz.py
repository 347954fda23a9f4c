"""Malformed messages to every MarketService RPC, under each role's certificate, over mutual TLS.

As for the other services (test_fuzz_rpcs): whatever arrives, the answer is a status a caller can
act on, never UNKNOWN or INTERNAL. Messages come from the same Hypothesis strategies.
"""

from __future__ import annotations

from typing import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datawharf.pki import Role
from datawharf.tls import channel_credentials
from datawharf.v1 import market_pb2
from tests.exchange import Exchange
from tests.integration.test_fuzz_rpcs import call, requests

METHODS: list[MethodDescriptor] = list(market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods)
ROLES = (Role.OPERATOR, Role.AUTHORITY, Role.PARTY, Role.BUYER)


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Role, grpc.Channel]]:
    ex = Exchange(tmp_path_factory.mktemp("market-fuzz"), parties=(), review=True)
    try:
        ex.start_gateway()
        chans = {r: grpc.secure_channel(ex.address, channel_credentials(ex.creds(f"fuzz-{r.value}", r)))
                 for r in ROLES}
        yield chans
        for ch in chans.values():
            ch.close()
        ex.alive()  # still serving after all of it
    finally:
        ex.stop()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_malformed_market_messages_get_an_actionable_status(channels: dict[Role, grpc.Channel],
                                                            method: MethodDescriptor) -> None:
    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=requests(method), role=st.sampled_from(ROLES))
    def fuzz(messages: list[bytes], role: Role) -> None:
        call(channels[role], method, messages or [b""])

    fuzz()


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exchange, dict[Role, grpc.Channel]]]:
    ex = Exchange(tmp_path_factory.mktemp("market-fuzz-signed"), parties=(), review=True)
    try:
        ex.start_gateway()
        chans = {r: grpc.secure_channel(ex.address, channel_credentials(ex.creds(f"fuzz-{r.value}", r)))
                 for r in (Role.PARTY, Role.OPERATOR)}
        yield ex, chans
        for ch in chans.values():
            ch.close()
        ex.alive()
    finally:
        ex.stop()


@pytest.mark.parametrize("role, name", [(Role.PARTY, "SubmitListing"), (Role.OPERATOR, "DecideListing")])
def test_signed_but_senseless_listings_and_decisions_are_refused_plainly(
        signers: tuple[Exchange, dict[Role, grpc.Channel]], role: Role, name: str) -> None:
    """Past the signature check: what a holder or reviewer with a valid key may sign is any bytes, or
    any message of the right type (its own name in it). The gateway still answers with a status."""
    from datawharf.market import DECISION_DOMAIN, LISTING_DOMAIN
    from datawharf.pki import digest, sign
    from tests.integration.test_fuzz_rpcs import message

    ex, chans = signers
    method = market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods_by_name[name]
    kind, domain, who = ((market_pb2.ListingBody, LISTING_DOMAIN, "holder") if role is Role.PARTY else
                         (market_pb2.DecisionBody, DECISION_DOMAIN, "reviewer"))
    creds = ex.creds(f"fuzz-{role.value}", role)
    typed = message(kind.DESCRIPTOR).map(lambda m: _named(m, who, creds))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=st.one_of(st.binary(max_size=400), typed))
    def fuzz(body: bytes) -> None:
        signed = market_pb2.Signed(body=body, signature=sign(creds.key, domain, digest(body)),
                                   certificate=creds.cert_pem)
        call(chans[role], method, [signed.SerializeToString()])

    fuzz()


def _named(m, who: str, creds) -> bytes:  # type: ignore[no-untyped-def]
    setattr(m, who, creds.identity.name)
    return m.SerializeToString()
