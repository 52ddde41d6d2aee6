"""Page size rules of ListJobCosts (a pure function; the limits are the shared ones)."""

from __future__ import annotations

import pytest

from services.billing.service_layer.handlers import page_size
from shared.contracts.limits import DEFAULT_PAGE, MAX_PAGE
from shared.errors import InvalidArgument


def test_page_size_defaults_and_bounds() -> None:
    assert page_size(0) == DEFAULT_PAGE
    assert (page_size(1), page_size(MAX_PAGE)) == (1, MAX_PAGE)
    for bad in (-1, MAX_PAGE + 1):
        with pytest.raises(InvalidArgument) as err:
            page_size(bad)
        assert err.value.field == "limit" and str(MAX_PAGE) in err.value.message
