"""Where a holder's heavy work runs: a local process pool, or a Dask cluster.

The TOML key ``compute`` chooses (``parties.config``)::

    compute = "local"                # the default: a pool of spawned processes, one per core
    compute = "dask://10.0.0.7:8786" # the tasks of a `dask scheduler` at that address

Either way the node gets a ``concurrent.futures.Executor``; only top-level
functions (``protocols.psi.run_chunk``) and plain data go through it, so a
process pool and a Dask worker run the same code. A Dask worker must have
this version of datawharf installed (``pip install 'datawharf[dask]'``).

What the cluster sees: the holder's PSI key (a scalar) and its IDs'
points, in every task's arguments. The scheduler and its workers are inside
the holder's trust boundary, like the node itself: run them on the holder's
own machines, and reach the scheduler over loopback or a private network
(``dask://`` is Dask's plaintext ``tcp://``). Anyone who can connect to a
Dask scheduler can run code on its workers.

``distributed`` is imported only for ``dask://``: a holder without the extra
never imports it.
"""

from __future__ import annotations

import ipaddress
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable
from urllib.parse import urlsplit

import datawharf
from datawharf.errors import WharfError

log = logging.getLogger("datawharf.party")

LOCAL = "local"
SCHEME = "dask"
CONNECT_TIMEOUT_S = 10.0


class ComputeError(WharfError):
    """The holder's compute backend cannot be used: the extra is missing or the scheduler is unreachable."""


@dataclass(frozen=True)
class DaskScheduler:
    host: str
    port: int

    @property
    def address(self) -> str:
        """The scheduler's address as Dask spells it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_compute(setting: str) -> DaskScheduler | None:
    """None for the local pool, else the Dask scheduler; ValueError saying what is wrong."""
    if setting == LOCAL:
        return None
    url = urlsplit(setting)
    if url.scheme != SCHEME:
        raise ValueError(f'{setting!r}: expected "local" or "dask://HOST:PORT" (a Dask scheduler)')
    try:
        port = url.port
    except ValueError:
        port = None  # not a number, or out of range
    if not url.hostname or port is None or port == 0:
        raise ValueError(f'{setting!r}: a Dask scheduler needs a host and a port, as in "dask://10.0.0.7:8786"')
    if url.path not in ("", "/") or url.query or url.fragment or url.username or url.password:
        raise ValueError(f'{setting!r}: only "dask://HOST:PORT" is understood (no path, query or user)')
    return DaskScheduler(url.hostname, port)


def open_executor(setting: str = LOCAL, *,
                  connect_timeout_s: float | None = None) -> tuple[Executor, Callable[[], None]]:
    """The executor for ``setting`` and the function that closes it.

    Blocks while it connects to a Dask scheduler (call it off the event loop).
    Raises ``ComputeError`` when ``distributed`` is not installed, the
    scheduler does not answer within ``connect_timeout_s`` (default
    ``CONNECT_TIMEOUT_S``), or a worker lacks this version of datawharf.
    """
    scheduler = parse_compute(setting)
    if scheduler is None:
        # Spawned, not forked: forking a process that runs gRPC threads is unsafe. Processes start
        # on the first task, so a holder that never runs PSI never starts one.
        pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn"))
        return pool, lambda: pool.shutdown(cancel_futures=True)
    return _open_dask(scheduler, CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s)


def _open_dask(scheduler: DaskScheduler, timeout_s: float) -> tuple[Executor, Callable[[], None]]:
    try:
        import distributed
    except ImportError:
        raise ComputeError(f"compute = \"dask://{scheduler.host}:{scheduler.port}\" needs Dask's distributed: "
                           "pip install 'datawharf[dask]' (or set compute = \"local\")") from None
    if not scheduler.loopback:
        log.warning("compute: the Dask scheduler at %s is reached over plaintext TCP; the holder's PSI key "
                    "travels with every task, so keep it on a private network you control", scheduler.address)
    try:
        client = distributed.Client(scheduler.address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ComputeError(f"compute: no Dask scheduler answered at {scheduler.address} within "
                           f"{timeout_s:g} s ({exc}); start one (`dask scheduler`) or set compute = \"local\"") from None
    try:
        _check_workers(client, scheduler)
    except BaseException:
        client.close()
        raise
    # pure=False: every task gets a fresh key. Pure keys would hash the arguments, the holder's
    # PSI key among them, into task names the scheduler keeps and shows.
    executor = client.get_executor(pure=False)

    def close() -> None:
        executor.shutdown(wait=False)
        client.close()

    return executor, close


def _check_workers(client: object, scheduler: DaskScheduler) -> None:
    """Workers present now run this version of datawharf: a worker with other code would blind
    IDs differently and make an intersection silently wrong."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("datawharf")  # like for like with the workers' answers
    except PackageNotFoundError:  # run from a source tree
        ours = datawharf.__version__
    try:
        versions: dict[str, str] = client.run(version, "datawharf")  # type: ignore[attr-defined]
    except Exception as exc:  # PackageNotFoundError on a worker, or a worker lost mid-call
        raise ComputeError(f"compute: a Dask worker of {scheduler.address} cannot run datawharf's tasks "
                           f"({type(exc).__name__}: {exc}); install datawharf {ours} "
                           "on every worker") from None
    wrong = sorted(w for w, v in versions.items() if v != ours)
    if wrong:
        raise ComputeError(f"compute: Dask worker(s) {', '.join(wrong)} of {scheduler.address} run datawharf "
                           f"{versions[wrong[0]]}, this holder {ours}; install the same version")
    if not versions:
        log.warning("compute: the Dask scheduler at %s has no workers yet; PSI tasks wait for one",
                    scheduler.address)
    else:
        log.info("compute: Dask scheduler %s with %d worker(s)", scheduler.address, len(versions))


__all__ = ["ComputeError", "DaskScheduler", "open_executor", "parse_compute"]
