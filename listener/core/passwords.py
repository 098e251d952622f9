"""Password hashing for dashboard log-ins: argon2id through argon2-cffi (a maintained binding
of the reference implementation), never our own crypto.

The parameters are argon2-cffi's defaults (RFC 9106's "low memory" profile: 64 MiB, 3 passes),
so a stolen database costs an attacker dearly per guess; :func:`needs_rehash` tells the login
code when a stored hash was made with weaker parameters, so it is upgraded at the next log-in.
Passwords are never logged, stored in clear or put in the audit log.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from listener.core.errors import ConfigError

MIN_LENGTH = 10  # NIST SP 800-63B asks for at least 8; a team's shared inbox deserves more
_HASHER = PasswordHasher()
# checked against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY = _HASHER.hash("not a password anyone has")


def check_strength(password: str) -> str:
    """The password, when it may be used; :class:`ConfigError` saying why not otherwise."""
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"a password needs at least {MIN_LENGTH} characters")
    if password.strip() != password:
        raise ConfigError("a password must not start or end with spaces")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash; False for no hash or a damaged one. With
    no hash (an unknown name) the same work is done, so timing does not tell names apart. An
    empty stored value counts as none: checked against the dummy, it must not let the dummy's
    own password in."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
