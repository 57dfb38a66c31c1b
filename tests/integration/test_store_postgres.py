"""The job store's contract (tests/unit/test_store.py, test_store_speakers.py, test_progress.py) on a
database on a real PostgreSQL server the tests start: every test there that takes a store, or opens one,
runs here too, with `opener` opening a PostgreSQL store instead of an SQLite file."""

from __future__ import annotations

import inspect

import pytest

from unit import test_progress as progress_contract
from unit import test_store as contract
from unit import test_store_speakers as speakers_contract
from unit.test_store import Opener
from unit.test_store import store as store  # the tests' fixture, over this module's `opener`
from whisperbatch.store.postgres import PostgresStore

for _module in (contract, speakers_contract, progress_contract):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and {"store", "opener"} & set(inspect.signature(_test).parameters):
            globals()[_name] = _test


@pytest.fixture(params=["postgresql"])
def opener(request: pytest.FixtureRequest) -> Opener:
    """Opens (or reopens) one store of the given backend."""
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url)
