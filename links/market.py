"""The link's listings in B's market: submitted for review and priced like any holder's.

B's operator reviews what the link offers (A's schema and terms, the
holders behind it) and the price B's buyers pay per job; B's meter charges
each job the link contributed to at that price, and the link's operator
settles with A, whose own meter charges the link's jobs at A's holders'
prices. The submission is signed with the link's B party certificate.
"""

from __future__ import annotations

import time

from datawharf.errors import NotFound, WharfError, from_rpc_error
from datawharf.market import check_terms, sign_listing
from datawharf.serde import listing_to_proto
from datawharf.tls import channel
from datawharf.v1 import market_pb2, market_pb2_grpc
from links.config import LinkConfig
from links.node import LinkNode
from links.upstream import RemoteError

__all__ = ["submit_listing"]


def submit_listing(cfg: LinkConfig, dataset: str, *, title: str, price_per_job: str, description: str = "",
                   classification: str = "internal", personal_data: bool = True,
                   currency: str = "CNY", pricing: str = "per-holder", weight: str = "1") -> market_pb2.MarketListing:
    """Submit (or resubmit) the link's listing of A's ``dataset`` to B's market; PENDING until reviewed.

    Raises:
        NotFound: A's catalog has no such dataset (or the link's config does not offer it).
        InvalidArgument: a title, price or currency that does not parse (named by ``argument``).
        WharfError: A or B cannot be reached, or B refuses the submission.
    """
    import grpc

    node = LinkNode(cfg)
    try:
        listing = next((x for x in node.listings() if x.name == dataset), None)
    except RemoteError as exc:
        raise WharfError(exc.reason) from None
    finally:
        close = getattr(node.upstream, "close", None)
        if close is not None:
            close()
    if listing is None:
        raise NotFound(f"the link offers no dataset {dataset!r} from {node.upstream.label} "
                       f"(it offers {', '.join(sorted(node._behind)) or 'nothing'})", argument="dataset")
    body = market_pb2.ListingBody(
        holder=cfg.name, dataset=listing_to_proto(listing), title=title,
        description=description or listing.description, classification=classification,
        personal_data=personal_data, price_per_job=price_per_job, currency=currency.upper(), pricing=pricing,
        weight=weight, signed_at=time.time())
    check_terms(body)  # B's gateway checks too; a typo is caught before anything is sent
    creds = node.creds
    with channel(cfg.party_at.gateway, creds) as ch:
        try:
            return market_pb2_grpc.MarketServiceStub(ch).SubmitListing(sign_listing(creds, body), timeout=30)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
