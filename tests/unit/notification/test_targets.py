"""The SSRF guard and the URL rules for webhook targets."""

from __future__ import annotations

import ipaddress

import pytest

from services.notification.domain.targets import check_addresses, forbidden_address, webhook_url
from shared.errors import InvalidArgument


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "fe80::1",
        "fc00::1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "198.18.0.1",
        "240.0.0.1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not forbidden_address(ipaddress.ip_address(address))


def test_one_private_answer_refuses_the_whole_target() -> None:
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.5")]
    reason = check_addresses(addresses, allow_private=False)
    assert reason is not None and "10.0.0.5" in reason and "refused" in reason
    assert check_addresses(addresses, allow_private=True) is None
    assert check_addresses([ipaddress.ip_address("8.8.8.8")], allow_private=False) is None
    assert check_addresses([], allow_private=True) == "target host did not resolve to any address"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/hook",
        "http:///nohost",
        "https://user:pw@example.com/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/" + "x" * 2048,
    ],
)
def test_registration_refuses_what_the_shared_url_rule_refuses(url: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        webhook_url(url, allow_private=True)
    assert err.value.field == "url"


def test_the_field_named_is_the_callers() -> None:
    with pytest.raises(InvalidArgument) as err:
        webhook_url("http://10.0.0.1/", allow_private=False, field="webhook_url")
    assert err.value.field == "webhook_url" and "webhook_url" in err.value.message


@pytest.mark.parametrize(
    "url", ["http://[2606:4700::1]:8080/x", "https://hooks.example.com/gpu", "http://8.8.8.8/x"]
)
def test_registration_accepts_public_literals_and_host_names(url: str) -> None:
    assert webhook_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
        "https://api.localhost/x",
    ],
)
def test_registration_refuses_literal_private_targets_unless_allowed(url: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        webhook_url(url, allow_private=False)
    assert err.value.field == "url"
    assert webhook_url(url, allow_private=True) == url


def test_registration_accepts_public_http_and_https() -> None:
    assert (
        webhook_url(" https://hooks.example.com/gpu ", allow_private=False) == "https://hooks.example.com/gpu"
    )
    with pytest.raises(InvalidArgument, match="http:// or https://"):
        webhook_url("gopher://example.com", allow_private=True)
    with pytest.raises(InvalidArgument, match="required"):
        webhook_url("  ", allow_private=True)
