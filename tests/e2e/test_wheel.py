"""The wheel works outside the repository, and `wharf demo` with it.

Built from this checkout, installed into a fresh virtualenv, and run from
another directory with no PYTHONPATH, so every module and data file comes
from the installed wheel: a file missing from package-data fails here. The
demo it runs is checked whole (every result against the plaintext truth,
the market, the ledger), so the demo needs no second run of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from datawharf import __version__

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    # A copy, because pip builds in the source tree: setuptools would leave
    # build/ and *.egg-info in the shared checkout, and it ships whatever an
    # earlier build left in build/lib, files since deleted included.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "test-artifacts",
        "wharf-data", "tests"))
    dist = tmp_path / "dist"
    # An absolute path: a bare name would be taken for a package on the index.
    check(run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src.resolve()],
              cwd=tmp_path, env=env, timeout=300))
    (wheel,) = dist.glob("datawharf-*.whl")
    return wheel


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(f"datawharf-{__version__}.dist-info/METADATA").decode()
    wanted = [p.relative_to(ROOT).as_posix() for p in (ROOT / "gateway" / "store").rglob("*.sql")]
    wanted += [p.relative_to(ROOT).as_posix() for p in (ROOT / "gateway" / "web" / "static").rglob("*") if p.is_file()]
    wanted += [p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/py.typed")]
    assert any(w.startswith("gateway/store/") for w in wanted) and "gateway/web/static/index.html" in wanted
    missing = sorted(set(wanted) - names)
    assert not missing, f"not in {wheel.name}: {missing}"
    assert f"datawharf-{__version__}.dist-info/licenses/LICENSE" in names
    assert f"\nVersion: {__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0" in metadata


def check_demo(stdout: str, workdir: Path) -> None:
    """What `wharf demo` must print: every result beside its plaintext truth, and the exchange's checks."""
    assert "all results match the plaintext truth" in stdout, stdout[-4000:]
    from wharf.demo import JOBS

    # + four PSI jobs, a noisy sum, a refused differencing attack and the statements that agree
    assert stdout.count("✓") == len(JOBS) + 7 and "✗" not in stdout, stdout
    assert "each approved by the operator" in stdout and "signed it" in stdout
    assert "equal to what the hospitals are paid" in stdout
    assert "does not allow filtering on 'patient_id'" in stdout
    assert "psi-sum cost" in stdout
    for backend in ("paillier-packed", "bfv", "ckks"):
        assert backend in stdout
    assert "northgate refused" in stdout
    assert "ledger verifies:" in stdout and "vouched for by a gateway certificate of the CA: yes" in stdout
    assert "holder receipts agree with the ledger" in stdout
    for log in ("gateway", "st-mary", "riverside", "northgate"):
        text = (workdir / "logs" / f"{log}.log").read_text()
        assert "Traceback" not in text, f"{log}.log:\n{text[-4000:]}"


@pytest.mark.timeout(1500)
def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    started = time.monotonic()
    # Nothing from the caller's environment may point back at the checkout or
    # configure the demo's gateway.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("WHARF_")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    wheel = build_wheel(tmp_path, env)
    check_wheel_contents(wheel)

    fresh = tmp_path / "fresh"
    check(run([sys.executable, "-m", "venv", fresh], cwd=elsewhere, env=env, timeout=120))
    python, wharf = fresh / "bin" / "python", fresh / "bin" / "wharf"
    check(run([python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel],
              cwd=elsewhere, env=env, timeout=600))
    installed = time.monotonic()

    purelib = Path(check(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=elsewhere, env=env, timeout=60)).strip()).resolve()
    for package in ("gateway", "datawharf", "parties", "protocols", "buyers", "wharf"):
        where = Path(check(run([python, "-c", f"import {package}, sys; print({package}.__file__)"],
                               cwd=elsewhere, env=env, timeout=60)).strip()).resolve()
        assert where.is_relative_to(purelib), f"{package} imported from {where}, not {purelib}"

    assert check(run([wharf, "--version"], cwd=elsewhere, env=env, timeout=60)) == f"wharf {__version__}\n"

    demo = run([wharf, "demo", "--rows", "1000", "--workdir", tmp_path / "demo"], cwd=elsewhere, env=env, timeout=600)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((tmp_path / "demo" / "logs").glob("*.log")))
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:] + logs
    check_demo(demo.stdout, tmp_path / "demo")

    report = elsewhere / "x.html"
    check(run([wharf, "bench", "report", "--out", report.name, "--results", ROOT / "benchmarks" / "results"],
              cwd=elsewhere, env=env, timeout=120))
    html = report.read_text()
    assert "* Chart.js v" in html and "window.WHARF_RECORDS" in html

    print(f"wheel test: built and installed in {installed - started:.1f} s, "
          f"whole test {time.monotonic() - started:.1f} s")
