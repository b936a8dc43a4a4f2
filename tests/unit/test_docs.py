"""docs/operations.md stays complete: every setting has a row in its table, with the real default."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

from infra.settings import Settings, env_names

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\|\s*`([A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


def documented_rows() -> dict[str, str]:
    """env var -> default cell, from every table row that starts with a `NAME` cell."""
    return {name: default for name, default in ROW.findall(OPERATIONS.read_text())}


def documented_default(value: object) -> str:
    """How the settings table writes a default."""
    if value in ("", ()):
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def test_every_setting_is_documented_in_operations_md() -> None:
    text = OPERATIONS.read_text()
    missing = sorted(name for name in env_names() if f"`{name}`" not in text)
    assert not missing, f"docs/operations.md does not mention: {', '.join(missing)}"


def test_every_setting_has_a_row_with_its_real_default() -> None:
    rows = documented_rows()
    missing = sorted(set(env_names()) - set(rows))
    assert not missing, f"docs/operations.md has no settings-table row for: {', '.join(missing)}"
    wrong = {}
    for f in fields(Settings):
        assert f.default is not MISSING, f"{f.name} has no default"
        expected = documented_default(f.default)
        if rows[f.metadata["env"]] != expected:
            wrong[f.metadata["env"]] = (rows[f.metadata["env"]], expected)
    assert not wrong, f"documented defaults differ from infra/settings.py (doc, real): {wrong}"


def test_operations_md_documents_no_lectern_setting_that_does_not_exist() -> None:
    stale = sorted(
        name for name in set(re.findall(r"`(LECTERN_[A-Z0-9_]+)`", OPERATIONS.read_text())) - set(env_names())
    )
    assert not stale, f"docs/operations.md describes settings Lectern does not read: {stale}"


def test_operations_md_explains_pointing_lectern_at_real_services() -> None:
    assert "## Pointing Lectern at PostgreSQL, Redis and MinIO" in OPERATIONS.read_text()
