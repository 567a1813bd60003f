"""Registered nicks: their table in the history database, and the decisions the history thread makes on them.

A user registers their current nick with a password; from then on only someone who gives that password can
log in with the nick or change to it, and the nick's direct messages are read only by them (they are filed
under the nick). The owner can change the password and drop the registration.

Who does what (see the thread model in chat_server/server.py):

* The connection's **reader thread** does the slow part: it reads the nick's stored hash with its own read
  connection and runs scrypt (`chat_server.reader.gate`), then hands the history thread a small *proof* (which
  stored hash the password matched) or, to register, the finished hash. scrypt never runs on the history
  thread: it serialises all chat, and one hash costs tens of milliseconds.
* The **history thread** owns the writes and the final say. It reads the row again on its writer connection
  and accepts a proof only if it matches the row *now*: a password changed or a registration dropped between
  the reader's check and the history thread's turn is caught here, with nothing hashed on this thread.

`Client.account` records the outcome: the registered nick's key once its password was verified, else None.
"""

from __future__ import annotations

import enum
import hmac
import sqlite3
from dataclasses import dataclass

from chat_server.hub import Client, Hub
from chat_server.passwords import PasswordHash, ScryptCost
from chat_server.replies import error_frame, now_ms
from chat_server.storage import HistoryError, HistoryStore
from shared.codec import encode
from shared.errors import ErrorCode
from shared.messages import ChangeNick, Registration

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    nick_key TEXT PRIMARY KEY,   -- fold(nick): the identity
    nick     TEXT NOT NULL,      -- the nick as registered
    salt     BLOB NOT NULL,
    hash     BLOB NOT NULL,      -- scrypt(password, salt, n, r, p)
    scrypt_n INTEGER NOT NULL,   -- the cost of this hash, kept per row so the default can be raised later
    scrypt_r INTEGER NOT NULL,
    scrypt_p INTEGER NOT NULL,
    created  INTEGER NOT NULL,   -- milliseconds since the Unix epoch
    changed  INTEGER NOT NULL
) WITHOUT ROWID;
"""


# -- The table (any connection) ----------------------------------------------------------------------------


def load(db: sqlite3.Connection, key: str) -> PasswordHash | None:
    """The stored password hash of the nick with this key, or None if it is not registered."""
    try:
        row = db.execute(
            "SELECT salt, hash, scrypt_n, scrypt_r, scrypt_p FROM accounts WHERE nick_key = ?", (key,)
        ).fetchone()
    except sqlite3.Error as error:
        raise HistoryError(f"cannot read registered nicks: {error}") from error
    if row is None:
        return None
    salt, digest, n, r, p = row
    return PasswordHash(salt=bytes(salt), digest=bytes(digest), cost=ScryptCost(n=n, r=r, p=p))


# -- What a reader thread hands over -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proof:
    """What a reader established about one nick before handing a login or nick change over.

    `digest` is the stored hash the given password matched, or None if the nick was not registered when the
    reader looked. It is not a secret (it is what the database holds) and it proves nothing by itself: the
    history thread compares it with the row as it is when the request is applied.
    """

    key: str
    digest: bytes | None


@dataclass(frozen=True, slots=True)
class Rename:
    """Internal request: a `nick` request, with the reader's proof when it carried a password."""

    request: ChangeNick
    proof: Proof | None


@dataclass(frozen=True, slots=True)
class Enroll:
    """Internal request: register `key` (the client's nick when the reader checked) with `stored`.

    `expected` is the hash registered when the reader checked (whose old password it verified), or None.
    """

    key: str
    stored: PasswordHash
    expected: bytes | None
    ref: int | None


@dataclass(frozen=True, slots=True)
class Unenroll:
    """Internal request: drop the registration of `key`, whose password (hash `expected`) was verified."""

    key: str
    expected: bytes
    ref: int | None


class Standing(enum.Enum):
    """Where a client stands with a nick it asks for."""

    FREE = "free"  # not registered: anyone may use it
    OWNER = "owner"  # registered, and this client proved it owns it
    REFUSED = "refused"  # registered, and no valid proof


def _same(left: bytes | None, right: bytes | None) -> bool:
    if left is None or right is None:
        return left is right
    return hmac.compare_digest(left, right)


# -- The history thread's side -----------------------------------------------------------------------------


class Accounts:
    """Registrations as the history thread sees them (it alone writes them, on the writer connection)."""

    def __init__(self, hub: Hub, store: HistoryStore) -> None:
        self.hub = hub
        self.store = store
        try:
            store.connection.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise HistoryError(f"cannot create the accounts table: {error}") from error

    def standing(self, client: Client, key: str, proof: Proof | None) -> Standing:
        """May `client` hold the nick with this key? Raises `HistoryError` if the table cannot be read."""
        stored = load(self.store.connection, key)
        if stored is None:
            return Standing.FREE
        if client.account == key:
            return Standing.OWNER  # verified earlier in this session (e.g. a change of letter case)
        if proof is not None and proof.key == key and _same(proof.digest, stored.digest):
            return Standing.OWNER
        return Standing.REFUSED

    def settle(self, client: Client, standing: Standing) -> None:
        """Record on `client` the account its (just given) nick belongs to, per `standing`."""
        with self.hub.lock:
            account = client.key if standing is Standing.OWNER else None
            for session in client.sessions:  # the registration belongs to the nick: to all its sessions
                session.account = account

    def enroll(self, client: Client, request: Enroll) -> bytes:
        """Register (or change the password of) the client's nick; the frame that answers it."""
        refusal = self.check_enroll(client, request)
        if refusal is not None:
            return refusal
        ts = now_ms()
        try:
            self.store.connection.execute(*enrollment(request.key, client.nick or "", request.stored, ts))
        except sqlite3.Error:
            # Called between batches (the caller flushed first), so this autocommit statement is its own
            # transaction: durable when it returns, like every acknowledged message.
            return error_frame(
                ErrorCode.HISTORY_UNAVAILABLE, "the registration could not be stored", request.ref
            )
        return self.enrolled(client, request.key, request.ref)

    def check_enroll(self, client: Client, request: Enroll) -> bytes | None:
        """Why `client` may not register with `request` now (the error frame), or None if it may: its nick
        is still the one the reader checked, and the registration is still the one it saw."""
        if client.key != request.key or client.nick is None:
            return error_frame(ErrorCode.FORBIDDEN, "your nick changed meanwhile; try again", request.ref)
        try:
            return self.changed_since(request.key, request.expected, request.ref)
        except HistoryError:
            return error_frame(
                ErrorCode.HISTORY_UNAVAILABLE, "the registration could not be stored", request.ref
            )

    def changed_since(self, key: str, expected: bytes | None, ref: int | None) -> bytes | None:
        """The `nick_registered` error if the registration of `key` is no longer `expected` (its hash, or
        None for not registered); None if it is. Raises `HistoryError` if the table cannot be read."""
        current = load(self.store.connection, key)
        if not _same(None if current is None else current.digest, expected):
            return error_frame(
                ErrorCode.NICK_REGISTERED, "the registration changed meanwhile; try again", ref
            )
        return None

    def enrolled(self, client: Client, key: str, ref: int | None) -> bytes:
        """`client`'s nick (`key`) was registered: its sessions own it, its siblings hear of it; the
        answer. A client whose nick changed meanwhile is answered, and owns nothing."""
        nick = client.nick or ""
        if client.key == key:
            self.settle(client, Standing.OWNER)
            self._tell_siblings(client, Registration(nick=nick, registered=True))
        return encode(Registration(nick=nick, registered=True, ref=ref))

    def unenroll(self, client: Client, request: Unenroll) -> bytes:
        """Drop the registration of the client's nick; the frame that answers it."""
        refusal = self.check_unenroll(client, request)
        if refusal is not None:
            return refusal
        try:
            self.store.connection.execute(*unenrollment(request.key))
        except sqlite3.Error:
            return error_frame(
                ErrorCode.HISTORY_UNAVAILABLE, "the registration could not be dropped", request.ref
            )
        return self.unenrolled(client, request.key, request.ref)

    def check_unenroll(self, client: Client, request: Unenroll) -> bytes | None:
        """Why `client` may not drop its registration now (the error frame), or None if it may."""
        if client.key != request.key or client.nick is None:
            return error_frame(ErrorCode.FORBIDDEN, "your nick changed meanwhile; try again", request.ref)
        try:
            if load(self.store.connection, request.key) is None:
                return error_frame(
                    ErrorCode.NOT_REGISTERED, f"{client.nick!r} is not registered", request.ref
                )
            return self.changed_since(request.key, request.expected, request.ref)
        except HistoryError:
            return error_frame(
                ErrorCode.HISTORY_UNAVAILABLE, "the registration could not be dropped", request.ref
            )

    def unenrolled(self, client: Client, key: str, ref: int | None) -> bytes:
        """`client`'s nick (`key`) is no longer registered: its sessions own nothing; the answer."""
        nick = client.nick or ""
        if client.key == key:
            self.settle(client, Standing.FREE)
            self._tell_siblings(client, Registration(nick=nick, registered=False))
        return encode(Registration(nick=nick, registered=False, ref=ref))

    def _tell_siblings(self, client: Client, change: Registration) -> None:
        """The nick's other sessions hear of a change of its registration (without a `ref`)."""
        if len(client.sessions) > 1:
            frame = encode(change)
            for session in client.sessions:
                if session is not client:
                    session.send(frame)


def _cost(stored: PasswordHash) -> tuple[int, int, int]:
    return stored.cost.n, stored.cost.r, stored.cost.p


def enrollment(key: str, nick: str, stored: PasswordHash, ts: int) -> tuple[str, tuple[object, ...]]:
    """The statement (SQL, parameters) that registers `key` as `nick` with `stored`, or changes its hash."""
    return (
        "INSERT INTO accounts (nick_key, nick, salt, hash, scrypt_n, scrypt_r, scrypt_p, created, changed)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (nick_key) DO UPDATE SET nick = excluded.nick,"
        " salt = excluded.salt, hash = excluded.hash, scrypt_n = excluded.scrypt_n,"
        " scrypt_r = excluded.scrypt_r, scrypt_p = excluded.scrypt_p, changed = excluded.changed",
        (key, nick, stored.salt, stored.digest, *_cost(stored), ts, ts),
    )


def unenrollment(key: str) -> tuple[str, tuple[object, ...]]:
    """The statement (SQL, parameters) that drops the registration of `key`."""
    return "DELETE FROM accounts WHERE nick_key = ?", (key,)
