"""Contracts: the committed AsyncAPI document is generated from code and current; migrations are sane."""

from pathlib import Path

import yaml

from shared.contracts import CATALOG, asyncapi
from shared.db import COMMON_SCHEMA_VERSION
from shared.migrate import SERVICES, latest_version, load

ROOT = Path(__file__).resolve().parents[3]


def test_committed_asyncapi_document_is_current():
    committed = (ROOT / "docs" / "asyncapi.yaml").read_text()
    assert committed == asyncapi.render(), "run `make asyncapi` and commit docs/asyncapi.yaml"


def test_asyncapi_lists_every_event_type_of_every_topic():
    doc = yaml.safe_load(asyncapi.render())
    ce_types = {m["x-ce-type"] for m in doc["components"]["messages"].values()}
    assert ce_types == {t for events in CATALOG.values() for t in events}
    assert {c["address"] for c in doc["channels"].values()} == set(CATALOG)


def test_every_service_has_ordered_migrations_and_common_version_matches():
    assert latest_version("_common") == COMMON_SCHEMA_VERSION
    for service in SERVICES:
        migrations = load(service)
        assert migrations, f"{service} has no migrations"
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
