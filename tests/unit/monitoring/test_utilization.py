"""The utilization window rules."""

import pytest

from services.monitoring.domain.utilization import MAX_HOURS, window_hours
from shared.errors import InvalidArgument


def test_unset_window_is_a_day():
    assert window_hours(0) == 24


@pytest.mark.parametrize("hours", [1, 24, MAX_HOURS])
def test_windows_in_range_are_kept(hours):
    assert window_hours(hours) == hours


@pytest.mark.parametrize("hours", [-1, MAX_HOURS + 1])
def test_windows_out_of_range_are_refused_naming_the_field(hours):
    with pytest.raises(InvalidArgument) as err:
        window_hours(hours)
    assert err.value.field == "hours"
