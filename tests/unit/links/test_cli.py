"""`wharf link ...` refuses bad input with a message a person can act on, before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from wharf.cli import app

runner = CliRunner()


def test_serve_names_a_missing_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["link", "serve", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1 and "nope.toml: no such configuration file" in result.output


def test_serve_names_a_missing_section(tmp_path: Path) -> None:
    path = tmp_path / "link.toml"
    path.write_text('name = "harbour-a"\n[party_at]\ngateway = "127.0.0.1:1"\nidentity = "ids"\n')
    result = runner.invoke(app, ["link", "serve", "--config", str(path)])
    assert result.exit_code == 1 and "buyer_at: required key is missing" in result.output


def test_serve_names_an_unreadable_identity(tmp_path: Path) -> None:
    path = tmp_path / "link.toml"
    path.write_text('name = "harbour-a"\n[party_at]\ngateway = "127.0.0.1:1"\nidentity = "ids/b"\n'
                    '[buyer_at]\ngateway = "127.0.0.1:2"\nidentity = "ids/a"\n')
    result = runner.invoke(app, ["link", "serve", "--config", str(path)])
    assert result.exit_code == 1 and "[party_at] identity" in result.output


def test_submit_wants_yes_or_no_for_personal_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["link", "submit", "--config", str(tmp_path / "x.toml"), "--dataset", "v",
                                 "--title", "t", "--price-per-job", "1.00", "--personal-data", "maybe"])
    assert result.exit_code == 1 and "say yes or no" in result.output
