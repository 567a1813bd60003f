"""Registered nicks shared across the cluster: `register`, password changes and `unregister` through the log.

`SharedAccounts` runs on the history thread. The connection's reader thread has done what it does on a
single server (checked the old password, made the new hash with scrypt: chat_server.reader.gate), so what
reaches the history thread is an `Enroll` or `Unenroll` (chat_server.history.accounts). Here:

1. the origin checks it exactly as a single server does (`Accounts.check_enroll`, `check_unenroll`: the
   nick is still the client's, the registration is still the one the reader saw), then publishes a record
   (``register``: the nick's key, its *hash* and salt and scrypt cost, never the password; ``unregister``:
   the key) with the hash the reader saw as ``expected``. Nothing is answered yet;
2. every server applies the record in stream order: it re-checks that the registration in its local copy is
   still ``expected`` (`Accounts.changed_since`), and if so writes the `accounts` row in the open
   transaction, exactly the row a single server writes (`enrollment`, `unenrollment`). Two registrations of
   one nick published at once both expect "not registered": the first in the log wins on every server, the
   second is refused on every server, and its requester gets the single server's `nick_registered` error;
3. the origin answers its requester after the commit (`Accounts.enrolled`, `unenrolled`: its sessions own
   the nick, its other sessions hear of it, `registration` answers it).

Because every server's copy has the same `accounts` rows, a login with a registered nick's password is
checked on whichever server it reaches, by the single server's code (the gate on the reader thread, the
proof on the history thread). A server applies a registration when it reads it from the log, normally
milliseconds after the origin; until then it does not know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat_server.history.accounts import Accounts, Enroll, Unenroll, enrollment, unenrollment
from chat_server.hub import Client
from chat_server.passwords import PasswordHash, ScryptCost

from .messaging import Awaiting, ClusterMessages


class SharedAccounts:
    """The cluster's route of `register` and `unregister`, and the appliers of their records."""

    def __init__(self, accounts: Accounts, messages: ClusterMessages) -> None:
        self.accounts = accounts
        self.messages = messages
        messages.applies("register", self._apply_register)
        messages.applies("unregister", self._apply_unregister)

    # -- The origin (the route of Enroll and Unenroll in cluster mode) --------------------------------------

    def enroll(self, client: Client, request: Enroll) -> None:
        """Check a registration (or password change) as a single server does, then publish it."""
        self.messages.flush()
        refusal = self.accounts.check_enroll(client, request)
        if refusal is not None:
            client.send(refusal)
            return
        stored = request.stored
        record = {
            "k": "register",
            "key": request.key,
            "salt": stored.salt,
            "hash": stored.digest,
            "cost": [stored.cost.n, stored.cost.r, stored.cost.p],
            "expected": request.expected,
        }
        self.messages.publish(record, Awaiting(client, request.ref))

    def unenroll(self, client: Client, request: Unenroll) -> None:
        """Check the end of a registration as a single server does, then publish it."""
        self.messages.flush()
        refusal = self.accounts.check_unenroll(client, request)
        if refusal is not None:
            client.send(refusal)
            return
        record = {"k": "unregister", "key": request.key, "expected": request.expected}
        self.messages.publish(record, Awaiting(client, request.ref))

    # -- Every server ------------------------------------------------------------------------------------

    def _apply_register(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        key = record["key"]
        if self._refused(record, waiting):
            return
        n, r, p = record["cost"]
        stored = PasswordHash(salt=record["salt"], digest=record["hash"], cost=ScryptCost(n=n, r=r, p=p))
        store = self.messages.store
        store.begin()
        store.run(*enrollment(key, record["nick"], stored, record["ts"]))
        self._answer(waiting, lambda client, ref: self.accounts.enrolled(client, key, ref))

    def _apply_unregister(self, _seq: int, record: dict[str, Any], waiting: Awaiting | None) -> None:
        key = record["key"]
        if self._refused(record, waiting):
            return
        store = self.messages.store
        store.begin()
        store.run(*unenrollment(key))
        self._answer(waiting, lambda client, ref: self.accounts.unenrolled(client, key, ref))

    def _refused(self, record: dict[str, Any], waiting: Awaiting | None) -> bool:
        """True if the registration of the record's nick is no longer the one its origin saw (an earlier
        record changed it): nothing is written, and the requester gets the single server's error."""
        ref = waiting.ref if waiting is not None else None
        refusal = self.accounts.changed_since(record["key"], record["expected"], ref)
        if refusal is None:
            return False
        if waiting is not None:
            self.messages.hold(waiting.client, refusal, ref)
        return True

    def _answer(self, waiting: Awaiting | None, answer: Callable[[Client, int | None], bytes]) -> None:
        """After the commit, the origin's requester gets `answer(client, ref)`; other servers commit only."""
        if waiting is None:
            self.messages.after_commit_do(_nothing, None, None)  # the write commits with the batch
            return
        client, ref = waiting.client, waiting.ref
        self.messages.after_commit_do(lambda: client.send(answer(client, ref)), client, ref)


def _nothing() -> None:
    """No local delivery: the record's row commits with the batch."""
