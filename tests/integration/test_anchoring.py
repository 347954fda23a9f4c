"""The ledger's head anchored at a time-stamping authority: a local stand-in TSA over HTTP.

The stand-in checks what an RFC 3161 authority would (the content type and
a SHA-256 MessageImprint), answers "granted" with a token naming the digest,
and records what it was asked. The gateway keeps the token and records an
``anchored`` entry in the ledger, which still verifies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Iterator

import pytest

from datawharf.tsp import request_digest
from tests.exchange import Exchange, StartExchange
from wharf.local import wait_for


class StandInTsa(BaseHTTPRequestHandler):
    asked: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self.send_error(415)
            return
        digest = request_digest(body)
        StandInTsa.asked.append(digest)
        token = b"\x04" + bytes([len(digest) + 9]) + b"stand-in:" + digest
        status = b"\x30\x03\x02\x01\x00"
        reply = b"\x30" + bytes([len(status) + len(token)]) + status + token
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tsa() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), StandInTsa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange, tsa: str) -> Exchange:
    ex = start_exchange("anchoring", parties=("st-mary",), rows=100)
    address = ex.address
    ex.stop_gateway()
    ex.start_gateway("--anchor-url", tsa, "--anchor-every", "1", listen=address)
    ex.wait_online(("st-mary",))
    return ex


def test_the_head_is_anchored_and_the_ledger_still_verifies(exchange: Exchange, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with exchange.client() as c:
        c.result(c.submit("visits", "cost", "count"))
    out = tmp_path / "ledger.jsonl"

    def exported() -> str:
        subprocess.run([sys.executable, "-m", "wharf", "audit", "export", "--data-dir", str(exchange.gateway_dir),
                        "--out", str(out)], check=True, capture_output=True)
        return out.read_text()

    wait_for("an anchored entry", lambda: '"kind":"anchored"' in exported(), 20, exchange.alive)
    assert any((exchange.gateway_dir / "anchors").iterdir())  # the token, kept
    entries = [json.loads(x) for x in out.read_text().splitlines()]
    anchored = [e for e in entries if e["kind"] == "anchored"]
    assert anchored
    first = anchored[0]["fields"]
    head = entries[first["head_seq"]]
    assert head["hash"] == first["head_hash"]
    assert bytes.fromhex(first["head_hash"]) in StandInTsa.asked  # the TSA was asked for exactly that head
    assert exchange.ca is not None
    verified = subprocess.run([sys.executable, "-m", "wharf", "audit", "verify", str(out), "--ca",
                               str(exchange.ca.dir / "ca.pem"), "--json"], capture_output=True, text=True)
    assert json.loads(verified.stdout)["ok"] is True
