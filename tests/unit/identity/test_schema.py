"""The database's check on key scopes agrees with the scopes the code knows (no I/O: reads the files)."""

from __future__ import annotations

import re
from pathlib import Path

from services.identity.adapters.orm import SCHEMA_VERSION
from shared.contracts import limits

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations" / "identity"


def test_the_latest_scope_check_allows_exactly_the_key_scopes() -> None:
    files = sorted(MIGRATIONS.glob("[0-9][0-9][0-9]_*.sql"))
    assert int(files[-1].name[:3]) == SCHEMA_VERSION
    latest = [f for f in files if "scopes" in f.read_text() and "ARRAY[" in f.read_text()][-1]
    array = re.search(r"scopes <@ ARRAY\[(.*?)\]", latest.read_text(), re.S)
    assert array is not None
    assert set(re.findall(r"'([^']+)'", array.group(1))) == set(limits.KEY_SCOPES)
