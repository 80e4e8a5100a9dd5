"""The settings: one typed table, each setting documented, each value parsed or refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storefront import create_app
from storefront.config import SETTINGS, ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme():
    text = README.read_text(encoding="utf-8")
    # A row names a setting in full (`STOREFRONT_RBS_URL`) or by what follows a shared start
    # (`STOREFRONT_RBS_URL`, `_USERNAME` is RBS_USERNAME).
    named = set(re.findall(r"`STOREFRONT_([A-Z0-9_]+)`", text))
    for row in text.splitlines():
        full = re.findall(r"`STOREFRONT_([A-Z0-9_]+)`", row)
        if not full:
            continue
        words = full[0].split("_")
        starts = ["_".join(words[:n]) for n in range(1, len(words))]
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", row):
            named |= {start + suffix for start in starts if start + suffix in SETTINGS}
    missing = sorted(name for name in SETTINGS if name not in named)
    assert missing == []


@pytest.mark.parametrize(
    "name, value",
    [
        ("GATEWAY_READ_TIMEOUT", "soon"),
        ("GATEWAY_READ_TIMEOUT", "-1"),
        ("PRODUCTS_PER_PAGE", "2.5"),
        ("RATELIMIT_ENABLED", "perhaps"),
        ("INTERPAY_ENCODING", "xml"),
        ("ENV", "staging"),
        ("LOCALES", "en,klingon"),
        ("LOCALES", " , "),
        ("DEFAULT_LOCALE", "fr"),  # not one of LOCALES
    ],
)
def test_a_value_that_does_not_parse_names_its_setting(monkeypatch, name, value):
    monkeypatch.setenv(f"STOREFRONT_{name}", value)
    with pytest.raises(ConfigError, match=f"STOREFRONT_{name}"):
        create_app({"SANDBOX": False})


def test_environment_values_are_parsed_by_their_type(monkeypatch, tmp_path):
    monkeypatch.setenv("STOREFRONT_GATEWAYS", " RBS , altapay ")
    monkeypatch.setenv("STOREFRONT_RATELIMIT_ENABLED", "off")
    monkeypatch.setenv("STOREFRONT_GATEWAY_READ_TIMEOUT", "7.5")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["GATEWAYS"] == ["rbs", "altapay"]
    assert app.config["RATELIMIT_ENABLED"] is False
    assert app.config["GATEWAY_READ_TIMEOUT"] == 7.5


def test_languages_are_written_as_babel_writes_them(monkeypatch, tmp_path):
    monkeypatch.setenv("STOREFRONT_LOCALES", "en, de-DE ,ru")
    monkeypatch.setenv("STOREFRONT_DEFAULT_LOCALE", "ru")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["LOCALES"] == ["en", "de_DE", "ru"]
    assert app.config["DEFAULT_LOCALE"] == "ru"
