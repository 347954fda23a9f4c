"""`wharf --version`, WHARF_* environment variables and --log-format on the serve commands.

Nothing is served: the gateway's ``serve`` and the party node are replaced by
stand-ins that record what the command built from its options.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from datawharf import __version__
from wharf.cli import JsonLogFormatter, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env_and_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No WHARF_* variable from the caller's shell; root logging put back as it was."""
    import os

    for name in list(os.environ):
        if name.startswith("WHARF_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def flat(text: str) -> str:
    """Error text without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Settings each `wharf gateway serve` would have served with."""
    import gateway.app

    seen: list[Any] = []

    async def fake_serve(settings: Any, stop: asyncio.Event | None = None) -> None:
        seen.append(settings)
        log = logging.getLogger("datawharf.gateway")
        log.info("listening on %s", settings.listen)
        try:
            raise RuntimeError("store is locked")
        except RuntimeError:
            log.exception("recovery failed")

    monkeypatch.setattr(gateway.app, "serve", fake_serve)
    return seen


def test_version_prints_name_and_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wharf {__version__}\n"


def test_gateway_serve_reads_every_option_from_the_environment(
    served: list[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from gateway.app import GatewaySettings

    env = {
        "WHARF_LISTEN": "127.0.0.1:0",
        "WHARF_DATA_DIR": str(tmp_path / "data"),
        "WHARF_WIRE_LOG": str(tmp_path / "wire.jsonl"),
        "WHARF_HTTP": "127.0.0.1:8088",
        "WHARF_HTTP_TOKEN": "t" * 20,
        "WHARF_HTTP_ALLOW_REMOTE": "1",
        "WHARF_BENCH_RESULTS": str(tmp_path / "results"),
        "WHARF_LOG_LEVEL": "debug",
        "WHARF_LOG_FORMAT": "json",
        "WHARF_STORE": "postgresql://wharf@db:5432/exchange",
        "WHARF_BLOB_DIR": str(tmp_path / "blobs"),
        "WHARF_REPLICA": "east-1",
        "WHARF_LEASE": "4.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["gateway", "serve"])
    assert result.exit_code == 0, result.output
    assert served == [GatewaySettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", wire_log=tmp_path / "wire.jsonl", http="127.0.0.1:8088",
        http_token="t" * 20, http_allow_remote=True, results_dir=tmp_path / "results",
        store="postgresql://wharf@db:5432/exchange", blob_dir=tmp_path / "blobs", replica="east-1", lease_s=4.5,
    )]
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert [type(h.formatter) for h in root.handlers] == [JsonLogFormatter]


def test_a_flag_beats_its_environment_variable(served: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_LISTEN", "127.0.0.1:1111")
    monkeypatch.setenv("WHARF_HTTP_ALLOW_REMOTE", "false")
    result = runner.invoke(app, ["gateway", "serve", "--listen", "127.0.0.1:2222", "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    assert served[0].listen == "127.0.0.1:2222"
    assert served[0].http_allow_remote is False


def test_serve_help_names_the_environment_variables() -> None:
    gateway_help = flat(runner.invoke(app, ["gateway", "serve", "--help"], env={"COLUMNS": "200"}).output)
    for name in ("WHARF_LISTEN", "WHARF_DATA_DIR", "WHARF_WIRE_LOG", "WHARF_HTTP", "WHARF_HTTP_TOKEN",
                 "WHARF_HTTP_ALLOW_REMOTE", "WHARF_BENCH_RESULTS", "WHARF_LOG_LEVEL", "WHARF_LOG_FORMAT"):
        assert f"env var: {name}]" in gateway_help
    party_help = flat(runner.invoke(app, ["party", "serve", "--help"], env={"COLUMNS": "200"}).output)
    for name in ("WHARF_PARTY_CONFIG", "WHARF_LOG_LEVEL", "WHARF_LOG_FORMAT"):
        assert f"env var: {name}]" in party_help


def test_party_serve_reads_its_config_path_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import parties.config
    import parties.node

    loaded: list[Path] = []
    ran: list[object] = []

    def fake_load(path: Path) -> object:
        loaded.append(path)
        return "cfg"

    class FakeNode:
        def __init__(self, cfg: object) -> None:
            self.cfg = cfg

        async def run(self, stop: asyncio.Event) -> None:
            ran.append(self.cfg)

    monkeypatch.setattr(parties.config, "load_party_config", fake_load)
    monkeypatch.setattr(parties.node, "PartyNode", FakeNode)
    monkeypatch.setenv("WHARF_PARTY_CONFIG", str(tmp_path / "party.toml"))
    monkeypatch.setenv("WHARF_LOG_FORMAT", "json")
    result = runner.invoke(app, ["party", "serve"])
    assert result.exit_code == 0, result.output
    assert loaded == [tmp_path / "party.toml"] and ran == ["cfg"]
    assert [type(h.formatter) for h in logging.getLogger().handlers] == [JsonLogFormatter]


def test_json_log_lines_parse_and_carry_the_traceback(served: list[Any]) -> None:
    result = runner.invoke(app, ["gateway", "serve", "--log-format", "json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    info, error = lines
    assert info["level"] == "INFO" and info["logger"] == "datawharf.gateway"
    assert info["message"] == "listening on 127.0.0.1:50051" and "exc" not in info
    ts = datetime.fromisoformat(info["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert error["level"] == "ERROR" and error["message"] == "recovery failed"
    assert error["exc"].startswith("Traceback (most recent call last):")
    assert error["exc"].rstrip().endswith("RuntimeError: store is locked")


def test_text_is_the_default_log_format(served: list[Any]) -> None:
    result = runner.invoke(app, ["gateway", "serve"])
    assert result.exit_code == 0, result.output
    assert "INFO datawharf.gateway: listening on 127.0.0.1:50051" in result.stderr
    assert "RuntimeError: store is locked" in result.stderr


def test_json_formatter_keeps_one_record_on_one_line() -> None:
    record = logging.LogRecord("parties.node", logging.WARNING, __file__, 1, "two\nlines: %s", ("é",), None)
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "two\nlines: é"


def test_json_formatter_with_an_exception_tuple() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    entry = json.loads(JsonLogFormatter().format(record))
    assert "KeyError: 'k'" in entry["exc"]


@pytest.mark.parametrize("command", [["gateway", "serve"], ["party", "serve", "--config", "p.toml"]])
def test_an_unknown_log_format_is_refused(command: list[str], served: list[Any]) -> None:
    result = runner.invoke(app, [*command, "--log-format", "yaml"])
    assert result.exit_code == 2
    message = flat(result.output)
    assert "Invalid value for '--log-format'" in message and "'yaml' is not one of 'text', 'json'" in message
    assert served == []


def test_an_unknown_log_format_in_the_environment_is_refused(
    served: list[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHARF_LOG_FORMAT", "xml")
    result = runner.invoke(app, ["gateway", "serve"])
    assert result.exit_code == 2
    assert "WHARF_LOG_FORMAT" in flat(result.output) and served == []


def test_unknown_log_level_is_refused() -> None:
    from typer.testing import CliRunner

    from wharf.cli import app

    out = CliRunner().invoke(app, ["party", "serve", "--config", "x.toml", "--log-level", "loud"])
    assert out.exit_code == 2 and "loud" in out.output
