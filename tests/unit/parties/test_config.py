from pathlib import Path

import pytest

from parties.config import ConfigError, load_party_config

GOOD = """
name = "st-mary"
gateway = "127.0.0.1:50051"

[[datasets]]
name = "visits"
source = "visits.csv"
columns = [
  { name = "age", type = "int" },
  { name = "cost", type = "decimal", decimals = 2 },
]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 5
"""


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "visits.csv").write_text("age,cost\n1,2.5\n")
    return tmp_path


def test_valid_config_resolves_source_next_to_file(folder: Path) -> None:
    (folder / "p.toml").write_text(GOOD)
    cfg = load_party_config(folder / "p.toml")
    assert cfg.datasets[0].source == (folder / "visits.csv").resolve()
    assert cfg.datasets[0].policy.min_rows == 5
    assert cfg.datasets[0].policy.allows_buyer("anyone")


def test_typo_names_the_key(folder: Path) -> None:
    (folder / "p.toml").write_text(GOOD.replace("min_rows", "min_rowz"))
    with pytest.raises(ConfigError, match=r"datasets\.0\.policy\.min_rowz: unknown key"):
        load_party_config(folder / "p.toml")


def test_missing_source_names_the_path(folder: Path) -> None:
    (folder / "p.toml").write_text(GOOD.replace("visits.csv", "nope.csv"))
    with pytest.raises(ConfigError, match=r"datasets\.0\.source: .*file not found: .*nope\.csv"):
        load_party_config(folder / "p.toml")


def test_missing_key_and_bad_values(folder: Path) -> None:
    text = GOOD.replace('allowed_buyers = ["*"]', "").replace('type = "int"', 'type = "float"')
    (folder / "p.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_party_config(folder / "p.toml")
    assert "datasets.0.policy.allowed_buyers: required key is missing" in err.value.message
    assert "datasets.0.columns.0.type" in err.value.message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_party_config(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_party_config(tmp_path / "bad.toml")


def test_bad_party_name(folder: Path) -> None:
    (folder / "p.toml").write_text(GOOD.replace('"st-mary"', '"st mary!"'))
    with pytest.raises(ConfigError, match="name: .*not valid"):
        load_party_config(folder / "p.toml")
