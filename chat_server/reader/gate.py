"""Password checks on the connection's reader thread: the server password and registered nicks' passwords.

One `Gate` is shared by every reader. It does the expensive, per-connection part of access control so the
history thread never has to (see chat_server/history/accounts.py for the history thread's part):

* compares `hello.password` with the server password (constant time);
* checks a registered nick's password with scrypt, and hashes new ones, at most `max_concurrent_hashes` at
  a time (each hash holds 16 MiB with the default cost: unbounded, a login wave could exhaust memory);
* limits wrong passwords per source address (an IPv6 address by its /64 prefix, `shared.addresses`):
  `password_failures` at once, then one more per `password_failure_seconds`. While an address has none
  left, its attempts are refused with `too_many_attempts` *without* checking the password, so guessing
  costs the attacker time, not the server CPU. Each check takes its token *before* comparing and gives it
  back if the password was right, so several connections from one address guessing at the same moment
  cannot overshoot the limit.

Every method either returns what the reader hands to the history thread, or raises `AccessRefused`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from chat_server.config import ServerConfig
from chat_server.history import accounts
from chat_server.history.accounts import Enroll, Proof, Unenroll
from chat_server.passwords import PasswordHash, hash_password, same_secret, verify_password
from chat_server.ratelimit import AddressBuckets
from chat_server.storage import HistoryError
from shared.addresses import address_key
from shared.errors import ErrorCode
from shared.messages import Hello, Register, Unregister
from shared.text import fold

log = logging.getLogger(__name__)

#: Seconds a reader waits for its turn to hash before the request is refused as "server busy".
HASH_WAIT = 10.0


class AccessRefused(Exception):
    """A password check refused the request: the error to send back."""

    def __init__(self, code: ErrorCode, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class Gate:
    """The reader threads' password checks and the per-address limit on wrong passwords (thread-safe)."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._password = config.password
        self._cost = config.scrypt_cost
        self._failures = AddressBuckets(
            1.0 / config.password_failure_seconds,
            config.password_failures,
            config.max_tracked_addresses,
            clock,
        )
        # Bounds the memory and CPU spent hashing at once; readers over it wait (at most HASH_WAIT).
        self._hashing = threading.BoundedSemaphore(config.max_concurrent_hashes)

    # -- Login -----------------------------------------------------------------------------------------------

    def admit(self, address: str, hello: Hello, db: Callable[[], sqlite3.Connection]) -> Proof | None:
        """Check a `hello`'s server password and nick password; the proof for the history thread.

        `db` opens (or returns) the reader's read connection; it is called only if a nick password is given.
        """
        if self._password is not None:
            if hello.password is None:
                raise AccessRefused(ErrorCode.BAD_PASSWORD, "this server needs a password")
            self._attempt(address)
            if not same_secret(hello.password, self._password):
                log.info("event=wrong_password peer=%s for=server", address)
                raise AccessRefused(ErrorCode.BAD_PASSWORD, "wrong server password")
            self._failures.give_back(address_key(address))
        if hello.nick_password is None:
            return None  # the history thread refuses the nick if it is registered
        return self.prove(address, hello.nick, hello.nick_password, db)

    # -- Nicks -----------------------------------------------------------------------------------------------

    def prove(self, address: str, nick: str, password: str, db: Callable[[], sqlite3.Connection]) -> Proof:
        """Check `password` against `nick`'s registration (if any); the proof for the history thread."""
        key = fold(nick)
        stored = self._load(db, key)
        if stored is None:
            return Proof(key, None)
        self._verify(address, stored, password, f"the nick {nick!r}")
        return Proof(key, stored.digest)

    def enroll(
        self, address: str, key: str, request: Register, db: Callable[[], sqlite3.Connection]
    ) -> Enroll:
        """Check a `register` (the old password, to change it) and hash the new password."""
        if not request.password:
            raise AccessRefused(ErrorCode.INVALID_FIELD, "the password must not be empty")
        stored = self._load(db, key)
        if stored is not None:
            if request.old_password is None:
                raise AccessRefused(
                    ErrorCode.NICK_REGISTERED, "your nick is registered already: give the old password too"
                )
            self._verify(address, stored, request.old_password, "your nick")
        fresh = self._hash(request.password)
        return Enroll(key, fresh, None if stored is None else stored.digest, request.ref)

    def unenroll(
        self, address: str, key: str, request: Unregister, db: Callable[[], sqlite3.Connection]
    ) -> Unenroll:
        """Check an `unregister`'s password."""
        stored = self._load(db, key)
        if stored is None:
            raise AccessRefused(ErrorCode.NOT_REGISTERED, "your nick is not registered")
        self._verify(address, stored, request.password, "your nick")
        return Unenroll(key, stored.digest, request.ref)

    # -- Helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _load(db: Callable[[], sqlite3.Connection], key: str) -> PasswordHash | None:
        try:
            return accounts.load(db(), key)
        except HistoryError as error:
            log.warning("event=accounts_unavailable error=%s", error)
            raise AccessRefused(ErrorCode.HISTORY_UNAVAILABLE, "registered nicks are unavailable") from None

    def _attempt(self, address: str) -> None:
        """Take the token a password check costs, or refuse unchecked when the address has none left."""
        wait = self._failures.take(address_key(address))
        if wait:
            retry = max(1, int(wait * 1000 + 0.999))
            raise AccessRefused(
                ErrorCode.TOO_MANY_ATTEMPTS, "too many wrong passwords; wait and retry", retry
            )

    def _verify(self, address: str, stored: PasswordHash, password: str, what: str) -> None:
        self._attempt(address)
        try:
            with self._turn():
                right = verify_password(password, stored)
        except AccessRefused:
            self._failures.give_back(address_key(address))  # never checked (server busy): not a wrong guess
            raise
        if not right:
            log.info("event=wrong_password peer=%s for=%s", address, what)
            raise AccessRefused(ErrorCode.NICK_REGISTERED, f"wrong password for {what}")
        self._failures.give_back(address_key(address))

    def _hash(self, password: str) -> PasswordHash:
        with self._turn():
            return hash_password(password, self._cost)

    def _turn(self) -> _Turn:
        return _Turn(self._hashing)


class _Turn:
    """Context manager: hold one of the hashing slots, or raise `AccessRefused` after waiting `HASH_WAIT`."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots

    def __enter__(self) -> None:
        if not self._slots.acquire(timeout=HASH_WAIT):
            raise AccessRefused(ErrorCode.RATE_LIMITED, "server busy, try again", 1000)

    def __exit__(self, *exc_info: object) -> None:
        self._slots.release()
