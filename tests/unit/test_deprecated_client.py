"""The client's old import path keeps working for one release, with a warning."""

import importlib

import pytest


def test_gateway_client_warns_and_gives_the_buyers_client() -> None:
    import buyers

    old = importlib.import_module("gateway.client")
    with pytest.warns(DeprecationWarning, match="from buyers import Client"):
        client_cls = old.Client
    assert client_cls is buyers.Client
    with pytest.warns(DeprecationWarning):
        from gateway.client import JobFailed  # noqa: F401
    with pytest.raises(AttributeError):
        old.Orchestrator  # noqa: B018
