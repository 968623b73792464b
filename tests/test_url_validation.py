"""``denseface.rpc.fetch`` without a network: URL syntax and the address policy (pure functions)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from denseface.errors import UrlIllegalError
from denseface.rpc.fetch import forbidden_reason, parse_image_url, parse_networks

LOOPBACK = parse_networks(["127.0.0.1/32"])


# --- URL syntax -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/a.jpg",
        "//example.com/a.jpg",
        "http:///a.jpg",
        "http://user:secret@example.com/a.jpg",
        "http://example.com@169.254.169.254/",
        "http://exa mple.com/a.jpg",
        "http://example.com/a\nb.jpg",
        "http://example.com:0/a.jpg",
        "http://example.com:99999/a.jpg",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://-bad-.example/",
        "http://example.com/" + "a" * 2100,
    ],
)
def test_illegal_urls(url: str) -> None:
    with pytest.raises(UrlIllegalError) as info:
        parse_image_url(url)
    assert info.value.code == "InvalidParameterValue.UrlIllegal"
    assert "secret" not in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.jpg",
        "HTTPS://Example.COM/a.jpg?sig=abc#frag",
        "http://例え.jp/写真.png",
        "http://[2606:4700::1111]:8080/x",
        "http://8.8.8.8/a.jpg",
        "http://images.example./a.jpg",
    ],
)
def test_legal_urls(url: str) -> None:
    parsed = parse_image_url(url)
    assert parsed.scheme in {"http", "https"}
    assert not parsed.fragment


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(max_size=100).map(lambda tail: "http://" + tail)))
def test_arbitrary_text_is_a_url_or_url_illegal(text: str) -> None:
    try:
        parsed = parse_image_url(text)
    except UrlIllegalError:
        return
    assert parsed.scheme in {"http", "https"}
    assert not parsed.userinfo


def test_url_length_limit_is_configurable() -> None:
    with pytest.raises(UrlIllegalError):
        parse_image_url("http://example.com/" + "a" * 100, max_length=64)


# --- address policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "fe80::1%1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_allow_list() -> None:
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), LOOPBACK) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.2"), LOOPBACK) == "loopback"
    assert forbidden_reason(ipaddress.ip_address("::1"), LOOPBACK) == "loopback"
