"""The wire log rotates instead of growing without end."""

from __future__ import annotations

from pathlib import Path

from datawharf.v1 import buyer_pb2
from gateway.wiretap import WireTap


def test_the_wire_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "wire.jsonl"
    tap = WireTap(path, max_bytes=2000, keep=2)
    message = buyer_pb2.GetJobRequest(job_id="job-" + "0" * 16)
    for _ in range(200):
        tap._record("/datawharf.v1.BuyerService/GetJob", "acme", "in", message)
    tap.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["wire.jsonl", "wire.jsonl.1", "wire.jsonl.2"]
    assert all(p.stat().st_size <= 2000 + 400 for p in tmp_path.iterdir())
