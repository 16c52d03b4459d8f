"""Settings: sane defaults, and a wrong value named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError
from tests.helpers import gridbot


def test_defaults_need_nothing() -> None:
    settings = Settings.from_mapping({})
    assert settings.port == 8080 and settings.host == "127.0.0.1"
    assert str(settings.timezone) == "Asia/Shanghai"
    assert settings.locale == "zh_CN"
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.categories.is_file()


@pytest.mark.parametrize("name,value,message", [
    ("GRIDBOT_PORT", "eighty", "GRIDBOT_PORT: must be a whole number"),
    ("GRIDBOT_PORT", "70000", "GRIDBOT_PORT"),
    ("GRIDBOT_TIMEZONE", "Mars/Olympus", "GRIDBOT_TIMEZONE: unknown time zone"),
    ("GRIDBOT_LOCALE", "fr", "GRIDBOT_LOCALE: must be one of zh_CN, en"),
    ("GRIDBOT_PUBLIC_URL", "ftp://x", "GRIDBOT_PUBLIC_URL"),
    ("GRIDBOT_CATEGORIES", "/no/such/file.toml", "GRIDBOT_CATEGORIES: no such file"),
    ("GRIDBOT_DEMO", "maybe", "GRIDBOT_DEMO: must be true or false"),
])
def test_a_wrong_value_names_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({name: value})


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GRIDBOT_PORT=9000\nGRIDBOT_LOCALE=en\n")
    settings = Settings.from_env({"GRIDBOT_LOCALE": "zh_CN"}, dotenv=env)
    assert settings.port == 9000 and settings.locale == "zh_CN"


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:///var/g.db"])
def test_a_database_url_other_than_postgresql_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(SettingsError, match=r"GRIDBOT_DATABASE: \w+:// databases are not"
                                            r" supported; give the path of a SQLite file"):
        Settings.from_mapping({"GRIDBOT_DATABASE": url})


def test_a_postgresql_url_selects_postgresql() -> None:
    url = "postgresql://gridbot@db.internal:5432/gridbot"
    assert Settings.from_mapping({"GRIDBOT_DATABASE": url}).database == url


def test_migrate_with_an_unreachable_postgresql_says_so_and_creates_nothing(
        tmp_path: Path) -> None:
    result = gridbot(tmp_path, "migrate", GRIDBOT_DATABASE="postgresql://u@127.0.0.1:1/g")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "gridbot: cannot reach the database postgresql://u@127.0.0.1:1/g"), lines
    assert list(tmp_path.iterdir()) == []  # no 'postgresql:' folder, no SQLite file
