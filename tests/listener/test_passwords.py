"""listener.core.passwords: which passwords may be used, and argon2 hashes checked with the real
argon2-cffi — right, wrong, no hash at all (an unknown name) and a damaged one."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from listener.core.errors import ConfigError
from listener.core.passwords import (
    MIN_LENGTH,
    check_strength,
    hash_password,
    needs_rehash,
    verify_password,
)

GOOD = "correct horse battery"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(GOOD)


@pytest.mark.parametrize("password", ["a" * MIN_LENGTH, GOOD, "pässwörd-日本語", "x" * 1000])
def test_long_enough_passwords_are_accepted_as_given(password: str) -> None:
    assert check_strength(password) == password


@pytest.mark.parametrize("password", ["", "short", "a" * (MIN_LENGTH - 1)])
def test_short_passwords_are_refused_saying_how_long_they_must_be(password: str) -> None:
    with pytest.raises(ConfigError, match=f"at least {MIN_LENGTH} characters"):
        check_strength(password)


@pytest.mark.parametrize("password", [" " + GOOD, GOOD + " ", GOOD + "\n", "\t" + GOOD])
def test_passwords_with_spaces_around_them_are_refused(password: str) -> None:
    with pytest.raises(ConfigError, match="must not start or end with spaces"):
        check_strength(password)


def test_spaces_inside_a_password_are_fine() -> None:
    assert check_strength("two words here") == "two words here"


def test_a_hash_is_argon2id_salted_and_never_the_password(stored: str) -> None:
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert hash_password(GOOD) != stored  # a new salt each time
    assert not needs_rehash(stored)


def test_the_right_password_verifies_and_a_wrong_one_does_not(stored: str) -> None:
    assert verify_password(stored, GOOD)
    assert not verify_password(stored, GOOD.upper())
    assert not verify_password(stored, GOOD + " ")
    assert not verify_password(stored, "")


def test_no_hash_never_verifies_not_even_the_dummys_own_password() -> None:
    for password in ("", GOOD, "not a password anyone has"):
        assert not verify_password(None, password)
        assert not verify_password("", password)


@pytest.mark.parametrize("garbage", ["garbage", "$argon2id$v=19$m=65536,t=3,p=4$broken",
                                     "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUV",
                                     "correct horse battery"])
def test_a_damaged_or_foreign_hash_is_a_failed_check_not_an_error(garbage: str) -> None:
    assert not verify_password(garbage, GOOD)


def test_a_hash_made_with_weaker_parameters_asks_to_be_rehashed() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(GOOD)
    assert verify_password(weak, GOOD)
    assert needs_rehash(weak)
