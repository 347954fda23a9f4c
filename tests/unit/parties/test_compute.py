"""The holder's ``compute`` setting: validated in its TOML, and what opening it does."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

import parties.compute
from parties.compute import ComputeError, DaskScheduler, open_executor, parse_compute
from parties.config import ConfigError, load_party_config

CONFIG = """{compute}
name = "st-mary"
gateway = "127.0.0.1:50051"
insecure = true

[[datasets]]
name = "visits"
source = "visits.csv"
columns = [{{ name = "patient_id", type = "string", join_key = true }}]
[datasets.policy]
allowed_buyers = ["*"]
"""


def write(folder: Path, compute: str) -> Path:
    (folder / "visits.csv").write_text("patient_id\nA\n")
    path = folder / "p.toml"
    path.write_text(CONFIG.format(compute=compute))
    return path


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compute_defaults_to_the_local_pool(tmp_path: Path) -> None:
    assert load_party_config(write(tmp_path, "")).compute == "local"
    assert load_party_config(write(tmp_path, 'compute = "local"')).compute == "local"


def test_a_dask_scheduler_address_is_accepted(tmp_path: Path) -> None:
    cfg = load_party_config(write(tmp_path, 'compute = "dask://10.0.0.7:8786"'))
    assert parse_compute(cfg.compute) == DaskScheduler("10.0.0.7", 8786)
    assert DaskScheduler("10.0.0.7", 8786).address == "tcp://10.0.0.7:8786"
    assert DaskScheduler("::1", 8786).address == "tcp://[::1]:8786"


@pytest.mark.parametrize("setting, says", [
    ("tcp://10.0.0.7:8786", 'expected "local" or "dask://HOST:PORT"'),
    ("Local", 'expected "local" or "dask://HOST:PORT"'),
    ("dask://10.0.0.7", "needs a host and a port"),
    ("dask://:8786", "needs a host and a port"),
    ("dask://10.0.0.7:http", "needs a host and a port"),
    ("dask://10.0.0.7:99999", "needs a host and a port"),
    ("dask://10.0.0.7:8786/jobs", "no path, query or user"),
])
def test_a_bad_setting_names_the_key(tmp_path: Path, setting: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_party_config(write(tmp_path, f'compute = "{setting}"'))
    line = next(x for x in err.value.message.splitlines() if x.strip().startswith("compute:"))
    assert says in line and setting in line


def test_local_needs_no_dask() -> None:
    # A fresh interpreter: this test process may have imported distributed already.
    code = ("import sys, parties.node\n"
            "from parties.compute import open_executor\n"
            "pool, close = open_executor('local')\n"
            "close()\n"
            "assert 'distributed' not in sys.modules, 'distributed was imported'\n"
            "print(type(pool).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ProcessPoolExecutor.__name__


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with pytest.raises(ComputeError, match=r"pip install 'datawharf\[dask\]'"):
        open_executor("dask://127.0.0.1:8786")


def test_an_unreachable_scheduler_names_its_address() -> None:
    port = free_port()
    with pytest.raises(ComputeError, match=rf"no Dask scheduler answered at tcp://127\.0\.0\.1:{port} within 1 s"):
        open_executor(f"dask://127.0.0.1:{port}", connect_timeout_s=1)


def test_the_node_fails_at_start_when_the_scheduler_is_unreachable(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before it dials the gateway (nothing listens at 127.0.0.1:50051 here)."""
    from parties.node import PartyNode

    port = free_port()
    monkeypatch.setattr(parties.compute, "CONNECT_TIMEOUT_S", 1.0)
    cfg = load_party_config(write(tmp_path, f'compute = "dask://127.0.0.1:{port}"'))
    with pytest.raises(ComputeError, match=rf"tcp://127\.0\.0\.1:{port}"):
        asyncio.run(asyncio.wait_for(PartyNode(cfg).run(asyncio.Event()), timeout=30))


def test_the_pool_work_pickles_by_reference() -> None:
    """Dask ships functions with cloudpickle: a top-level function travels as its name, so a worker
    runs its own installed copy of the code."""
    cloudpickle = pytest.importorskip("cloudpickle")
    from protocols import psi

    assert b"run_chunk" in cloudpickle.dumps(psi.run_chunk) and len(cloudpickle.dumps(psi.run_chunk)) < 200
    job = (psi.Key().raw(), "hash_and_blind", [b"A", b"B"])
    assert cloudpickle.loads(cloudpickle.dumps(job)) == job


def test_a_failing_backend_fails_the_task_without_naming_machines() -> None:
    from parties.node import _backend_failures
    from protocols.psi import InvalidPoint, PsiError

    def lost() -> Iterator[list[bytes]]:
        yield [b"x"]
        raise OSError("lost worker tcp://10.0.0.9:40211")

    with pytest.raises(PsiError) as err:
        list(_backend_failures(lost()))
    assert "compute backend failed" in str(err.value) and "10.0.0.9" not in str(err.value)

    def bad_point() -> Iterator[list[bytes]]:  # the protocol's own errors pass as they are
        raise InvalidPoint("not a point")
        yield []

    with pytest.raises(InvalidPoint):
        list(_backend_failures(bad_point()))
