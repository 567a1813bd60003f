"""Nicks unique across the cluster: a JetStream key-value bucket with atomic create, and a lease.

`NickLeases` keeps the bucket ``PREFIX-nicks``: one key per nick in use anywhere in the cluster (the folded
nick, hex-encoded), whose value names the server holding it and the SHA-256 of its session's resume token.
The bucket's entries expire `server_lease` seconds after their last write.

* `claim(key, resume_token)` runs on a reader thread before its login (or its `nick` change: `rename`) goes
  to the history thread, and waits
  (bounded by `publish_timeout`) for the loop: the key is created (atomic: one server wins), or it is this
  server's already (the local hub decides, as on a single server), or its value carries the hash of the
  resume token the login shows (a client failing over from another server: the entry is taken over with a
  compare-and-set on its revision), or the nick is absent in the cluster's roster (an always-on nick none of
  whose sessions is connected; its last server may not have freed the entry yet, or died holding it) and
  the login gave the nick's password (taken over the same way). Otherwise another server holds the nick:
  `nick_taken`.
* Every `NICK_ROUND` seconds the ``nats`` thread compares its entries with the nicks the hub holds (a copy
  under ``Hub.lock``): it writes the resume token's hash of new sessions, deletes the entries of nicks no
  longer held here (freed cluster-wide within a round), and every third of `server_lease` rewrites them all
  (the lease).
* It watches the bucket: an entry of a nick held here that another server writes was taken over (a
  failover): the local session is ended with `session_replaced` (a `NickLost` request to the history
  thread). So is one whose write finds another server's entry.
* A server that dies stops refreshing: its nicks are free after at most `server_lease`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from chat_server.hub import Hub
from chat_server.replies import error_frame
from shared.errors import ErrorCode
from shared.messages import Hello
from shared.text import fold

from .link import ClusterUnavailable

if TYPE_CHECKING:
    from .link import NatsLink

log = logging.getLogger(__name__)

#: Seconds between two comparisons of the bucket with the nicks held here (a freed nick is free everywhere
#: within about this long).
NICK_ROUND = 1.0


@dataclass(frozen=True, slots=True)
class NickLost:
    """Internal request (NATS thread -> history thread): another server took over the nick `key` with its
    session's resume token: end the session holding it here."""

    key: str


@dataclass(slots=True)
class _Held:
    value: bytes
    revision: int
    since: float


def token_hash(token: str | None) -> str:
    """What the bucket stores of a resume token (never the token: a secret)."""
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


def bucket_key(key: str) -> str:
    """The bucket key of a folded nick (a bucket key allows only a few ASCII characters)."""
    return "n" + key.encode().hex()


class NickLeases:
    """The nicks this server holds in the cluster's nick bucket (its state lives on the loop)."""

    def __init__(
        self,
        link: NatsLink,
        hub: Hub,
        lost: Callable[[NickLost], bool],
        absent: Callable[[str], bool] = lambda _key: False,
    ) -> None:
        self.link = link
        self.hub = hub
        self._lost = lost
        #: Is the nick absent in the cluster's roster (chat_server.cluster.presence; any thread may ask)?
        self._absent = absent
        self._bucket: Any = None
        self._held: dict[str, _Held] = {}  # by folded nick (loop only)
        self._refreshed = 0.0

    # -- Reader threads --------------------------------------------------------------------------------------

    def admit(self, hello: Hello, owner: bool = False) -> tuple[ErrorCode, bytes] | None:
        """None if this server may log `hello` in under its nick; else the code and the fatal error frame
        refusing it: `nick_taken` (another server holds it) or `history_unavailable` (NATS does not
        answer). `owner`: the login gave the password of the registered nick."""
        key = fold(hello.nick)
        try:
            if self.claim(key, hello.resume_token, owner and self._absent(key)):
                return None
        except ClusterUnavailable as error:
            log.warning("event=nicks_unavailable error=%s", error)
            message = "nicks are unavailable: the cluster does not answer"
            code = ErrorCode.HISTORY_UNAVAILABLE
            return code, error_frame(code, message, hello.ref, fatal=True)
        taken = f"nick {hello.nick!r} is in use on another server"
        return ErrorCode.NICK_TAKEN, error_frame(ErrorCode.NICK_TAKEN, taken, hello.ref, fatal=True)

    def rename(self, nick: str, ref: int | None) -> bytes | None:
        """None if this server may give `nick` to one of its clients changing nick (`nick`); else the error
        frame refusing it (not fatal): `nick_taken` (another server holds it) or `history_unavailable`."""
        try:
            if self.claim(fold(nick), None):
                return None
        except ClusterUnavailable as error:
            log.warning("event=nicks_unavailable error=%s", error)
            message = "nicks are unavailable: the cluster does not answer"
            return error_frame(ErrorCode.HISTORY_UNAVAILABLE, message, ref)
        return error_frame(ErrorCode.NICK_TAKEN, f"nick {nick!r} is in use on another server", ref)

    def claim(self, key: str, resume_token: str | None, take_over: bool = False) -> bool:
        """True if this server may give the nick `key` to a login; False if another server holds it (unless
        `take_over`: its absent owner comes back). `ClusterUnavailable` if NATS does not answer within
        `publish_timeout`."""
        claiming = self._claim(key, token_hash(resume_token), take_over)
        future = asyncio.run_coroutine_threadsafe(claiming, self.link.loop)
        try:
            return future.result(self.link.config.publish_timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise ClusterUnavailable("the cluster's nick bucket did not answer in time") from None
        except ClusterUnavailable:
            raise
        except Exception as error:
            raise ClusterUnavailable(f"the cluster's nick bucket failed: {error!r}") from None

    # -- Loop ------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the bucket and start the rounds."""
        self._bucket = await self.link.key_value("nicks", ttl=self.link.config.server_lease)
        self.link.keep(self._rounds())
        self.link.keep(self._watch(await self._bucket.watchall()))

    async def _watch(self, watcher: Any) -> None:
        """Follow the bucket: a nick held here that another server writes was taken over (a failover with
        its session's resume token): end the session here at once."""
        async for entry in watcher:
            if entry is None or entry.operation is not None or not entry.value:
                continue
            key = bytes.fromhex(entry.key[1:]).decode()
            if key in self._held and msgpack.unpackb(entry.value).get("s") != self.link.origin:
                del self._held[key]
                self._lost(NickLost(key))

    def _value(self, token: str) -> bytes:
        value: bytes = msgpack.packb({"s": self.link.origin, "t": token})
        return value

    async def _claim(self, key: str, token: str, take_over: bool) -> bool:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        name = bucket_key(key)
        value = self._value("")
        for _ in range(3):  # the entry may change between our reads: try a few times
            try:
                revision = await self._bucket.create(name, value)
            except KeyWrongLastSequenceError:
                pass
            else:
                self._held[key] = _Held(value, revision, time.monotonic())
                return True
            try:
                entry = await self._bucket.get(name)
            except KeyNotFoundError:
                continue  # deleted or expired meanwhile: create again
            held = msgpack.unpackb(entry.value) if entry.value else {}
            if held.get("s") == self.link.origin:
                self._held[key] = _Held(entry.value, entry.revision, time.monotonic())
                return True  # ours: the local hub decides, as on a single server
            if not take_over and (not token or held.get("t") != token):
                return False
            try:  # the session's resume token (a client failing over), or the absent nick's password
                revision = await self._bucket.update(name, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            self._held[key] = _Held(value, revision, time.monotonic())
            log.info("event=nick_taken_over nick_key=%s", name)
            return True
        return False

    async def _rounds(self) -> None:
        while True:
            await asyncio.sleep(NICK_ROUND)  # the period of the comparison, not a synchronisation
            try:
                await self._round()
            except Exception as error:  # NATS away for a moment: the next round tries again
                log.warning("event=nick_round_failed error=%r", error)

    async def _round(self) -> None:
        from nats.js.errors import APIError

        with self.hub.lock:  # a copy; no I/O under the lock
            local = {key: client.resume_token for key, client in self.hub.nicks.items()}
        now = time.monotonic()
        renew = now - self._refreshed >= self.link.config.server_lease / 3
        if renew:
            self._refreshed = now
        for key, held in list(self._held.items()):
            if key not in local and now - held.since > NICK_ROUND:
                # Freed here (or claimed by a login that did not happen): free it everywhere.
                del self._held[key]
                with contextlib.suppress(APIError):  # taken over (or expired) meanwhile: not ours to delete
                    await self._bucket.delete(bucket_key(key), last=held.revision)
        for key, token in local.items():
            mine = self._held.get(key)
            value = self._value(token_hash(token))
            if mine is not None and mine.value == value and not renew:
                continue
            revision = await self._write(key, value, mine)
            if revision is None:
                # Another server holds it now (it took it over with this session's token): end ours.
                self._held.pop(key, None)
                self._lost(NickLost(key))
                continue
            self._held[key] = _Held(value, revision, mine.since if mine is not None else now)

    async def _write(self, key: str, value: bytes, held: _Held | None) -> int | None:
        """Write our entry for `key`; its new revision, or None if another server's entry is there."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        name = bucket_key(key)
        try:
            if held is not None:
                return int(await self._bucket.update(name, value, last=held.revision))
            return int(await self._bucket.create(name, value))
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self._bucket.get(name)
        except KeyNotFoundError:  # expired (NATS was away longer than the lease): ours to create again
            try:
                return int(await self._bucket.create(name, value))
            except KeyWrongLastSequenceError:
                return None
        if entry.value and msgpack.unpackb(entry.value).get("s") == self.link.origin:
            return int(await self._bucket.update(name, value, last=entry.revision))
        return None
