"""gRPC credentials from a certified identity, and the one way to go without.

Both ends present certificates of the exchange CA: the gateway requires a
client certificate on every connection, clients check the gateway's
certificate against the CA and the address they dial. Plaintext needs an
explicit ``insecure=True`` and a loopback address, and says so on stderr.
"""

from __future__ import annotations

import ipaddress
import sys

import grpc

from datawharf.errors import InvalidArgument
from datawharf.grpc_options import client_options
from datawharf.pki import Credentials

__all__ = ["channel", "aio_channel", "check_insecure", "server_credentials"]


def server_credentials(creds: Credentials) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(creds.key_pem, creds.cert_pem)], root_certificates=creds.ca_pem,
                                       require_client_auth=True)


def channel_credentials(creds: Credentials) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=creds.ca_pem, private_key=creds.key_pem,
                                        certificate_chain=creds.cert_pem)


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_insecure(address: str, who: str) -> None:
    """Allow plaintext only on loopback, loudly."""
    if not is_loopback(address):
        raise InvalidArgument(
            f"--insecure is only allowed on a loopback address, not {address}: anyone on the path could read "
            "and forge traffic; use certificates from `wharf ca issue` instead", argument="insecure")
    print(f"warning: {who} runs WITHOUT TLS on {address}; identities are self-asserted (development only)",
          file=sys.stderr, flush=True)


def _require(address: str, creds: Credentials | None, insecure: bool) -> None:
    if creds is None and insecure and not is_loopback(address):
        raise InvalidArgument(f"plaintext is only allowed to a loopback address, not {address}; "
                              "connect with your certificate instead", argument="insecure")
    if creds is None and not insecure:
        raise InvalidArgument(
            "no identity given: pass the directory from `wharf ca issue` (--identity DIR), "
            "or insecure=True on loopback for development", argument="identity")


def channel(address: str, creds: Credentials | None, *, insecure: bool = False) -> grpc.Channel:
    _require(address, creds, insecure)
    if creds is not None:
        creds.check_current()
    if creds is None:
        return grpc.insecure_channel(address, options=client_options())
    return grpc.secure_channel(address, channel_credentials(creds), options=client_options())


def aio_channel(address: str, creds: Credentials | None, *, insecure: bool = False) -> grpc.aio.Channel:
    _require(address, creds, insecure)
    if creds is not None:
        creds.check_current()
    if creds is None:
        return grpc.aio.insecure_channel(address, options=client_options())
    return grpc.aio.secure_channel(address, channel_credentials(creds), options=client_options())
