"""Object keys: normalised, confined to a tenant namespace."""

from __future__ import annotations

import pytest

from storage.keys import MAX_KEY_LENGTH, InvalidKey, normalize_key, tenant_key

# --- object keys (carried over from the old imaging test module) ------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a//b/./c", "a/b/c"),
        ("photo.jpg", "photo.jpg"),
        ("./a", "a"),
        ("a/b/", "a/b"),
        ("a/./././b", "a/b"),
        ("x..y/..z", "x..y/..z"),
        ("k" * MAX_KEY_LENGTH, "k" * MAX_KEY_LENGTH),
    ],
)
def test_normalize_key_accepts(key: str, expected: str) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "/",
        "a/../b",
        "..",
        "../x",
        "a/..",
        "a\\b",
        "a\x00b",
        "a\nb",
        "\x1f",
        "a\x7fb",
        ".",
        "./",
        "//",
        "k" * (MAX_KEY_LENGTH + 1),
    ],
    ids=repr,
)
def test_normalize_key_rejects(key: str) -> None:
    with pytest.raises(InvalidKey):
        normalize_key(key)


def test_invalid_key_is_a_value_error() -> None:
    assert issubclass(InvalidKey, ValueError)


def test_tenant_key_prefixes_namespace() -> None:
    assert tenant_key("acme", "a//b/./c") == "tenants/acme/a/b/c"
    assert tenant_key("t_1-x", "photo.jpg") == "tenants/t_1-x/photo.jpg"


@pytest.mark.parametrize(
    ("tenant", "key"),
    [
        ("acme", "../other/secret"),
        ("acme", "/etc/passwd"),
        ("", "a"),
        ("../x", "a"),
        ("a/b", "c"),
        ("t" * 65, "a"),
    ],
)
def test_tenant_key_rejects(tenant: str, key: str) -> None:
    with pytest.raises(InvalidKey):
        tenant_key(tenant, key)
