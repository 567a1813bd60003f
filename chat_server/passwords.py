"""Password hashing for registered nicks: salted `hashlib.scrypt`, with its cost stored beside each hash.

scrypt is memory-hard: each hash needs ``128 * r * n`` bytes of memory (16 MiB with the defaults below) and
tens of milliseconds of one core, so a stolen database costs an attacker as much per guess. The cost
parameters are kept with every hash, so they can be raised later without invalidating existing passwords:
a password is always checked with the parameters it was hashed with.

Nothing here touches a socket, a thread or the database. Hashing is slow by design, so callers must never do
it on the history thread (it serialises all chat): `chat_server.reader.gate` hashes on the connection's reader
thread, a bounded number at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

#: scrypt cost defaults (the "interactive login" parameters of the scrypt paper): 2**14 blocks of 1 KiB.
DEFAULT_SCRYPT_N = 2**14
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1
#: Random salt per password, and length of the derived hash, in bytes.
SALT_BYTES = 16
HASH_BYTES = 32
#: Extra memory allowed to scrypt beyond its own need (``128 * r * n``), for its bookkeeping.
_MAXMEM_MARGIN = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt's cost parameters: `n` (a power of two > 1), block size `r`, parallelism `p`."""

    n: int = DEFAULT_SCRYPT_N
    r: int = DEFAULT_SCRYPT_R
    p: int = DEFAULT_SCRYPT_P

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError(f"scrypt_n must be a power of two greater than 1, not {self.n}")
        if self.r < 1 or self.p < 1:
            raise ValueError("scrypt_r and scrypt_p must be positive")

    @property
    def memory(self) -> int:
        """Bytes of memory one hash needs."""
        return 128 * self.r * self.n * self.p


@dataclass(frozen=True, slots=True, repr=False)
class PasswordHash:
    """A stored password: salt, derived hash and the cost it was derived with (never the password)."""

    salt: bytes
    digest: bytes
    cost: ScryptCost

    def __repr__(self) -> str:
        return f"<PasswordHash n={self.cost.n} r={self.cost.r} p={self.cost.p}>"


def _derive(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.memory + _MAXMEM_MARGIN,
        dklen=HASH_BYTES,
    )


def hash_password(password: str, cost: ScryptCost) -> PasswordHash:
    """Hash `password` with a fresh random salt (slow by design: never on the history thread)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(salt=salt, digest=_derive(password, salt, cost), cost=cost)


def verify_password(password: str, stored: PasswordHash) -> bool:
    """True if `password` is the one `stored` was made from (constant-time comparison; slow by design)."""
    return hmac.compare_digest(_derive(password, stored.salt, stored.cost), stored.digest)


def same_secret(given: str, expected: str) -> bool:
    """Compare two plain secrets (the server password) in time that does not depend on where they differ.

    Both are hashed first so that the comparison does not reveal the expected length either.
    """
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )
