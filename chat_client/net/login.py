"""Logging in, first and after every reconnect: the `hello`, the passwords it carries, and the retry policy.

`Credentials` keeps the server's password and our nick's password in memory only, to log in again after a
reconnect. A nick change or a registration changes which nick password is right only once the server
agrees, so each such request's password waits here (by folded nick, or by `ref`) until its answer comes.

Which failures are worth another attempt is decided here too: a refusal that may clear by itself (the nick
still held by our previous connection, a full server) is retried with backoff; a refusal at the first login,
or one that would only repeat (a bad hello, an unsupported version), ends the client.
"""

from __future__ import annotations

import os

from chat_client.net.errors import ConnectionLost, LoginRefused
from shared import PROTOCOL_NAME, PROTOCOL_VERSION, ErrorCode, Hello, fold
from shared.messages import SessionInfo

# Login refusals worth retrying: the condition may clear by itself. `nick_taken` is here because after a
# network drop the server may still hold our previous connection (a ghost) until its ping timeout; so may
# `too_many_sessions` (a registered nick's sessions are bounded, and our old one may still count).
RETRYABLE_LOGIN_CODES = frozenset(
    {
        ErrorCode.NICK_TAKEN,
        ErrorCode.TOO_MANY_SESSIONS,
        ErrorCode.SERVER_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_SHUTDOWN,
        ErrorCode.RATE_LIMITED,
        ErrorCode.HELLO_TIMEOUT,
        ErrorCode.INTERNAL_ERROR,
    }
)
# Fatal session errors after which reconnecting would only repeat the failure.
FINAL_SESSION_CODES = frozenset({ErrorCode.BAD_HELLO, ErrorCode.UNSUPPORTED_VERSION})
#: Refusals of a login that say "not this server, not now": with several servers (`host` a list), the client
#: tries the next one at once instead of waiting for this one.
FAIL_OVER_CODES = frozenset(
    {ErrorCode.SERVER_FULL, ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.SERVER_SHUTDOWN}
)


class Credentials:
    """Who we log in as: our nick, the passwords to log in with, and those of requests awaiting an answer."""

    def __init__(self, nick: str, password: str | None, nick_password: str | None) -> None:
        #: Our nick as the server knows it (set from the welcome, changed by our nick changes).
        self.nick = nick
        #: This session's id and every session of our nick (`welcome.sessions`, then each `sessions`).
        self.session_id: int | None = None
        self.sessions: tuple[SessionInfo, ...] = ()
        self._password = password
        self._nick_password = nick_password
        # Passwords of requests waiting for their answer: a nick change (by folded nick) and a registration
        # (by ref). Once the server agrees, the password is the one to log in with after a reconnect.
        self._nick_passwords: dict[str, str | None] = {}
        self._registering: dict[int, str | None] = {}

    def hello(
        self,
        *,
        client: str,
        rooms: tuple[str, ...] | None,
        resume_token: str | None = None,
        after: dict[str, int] | None = None,
        direct_after: int | None = None,
    ) -> Hello:
        """The login frame for our nick, asking to be put in `rooms`; `resume_token` to resume a session,
        `after` and `direct_after` to resume its rooms and direct messages in the login."""
        return Hello(
            proto=PROTOCOL_NAME,
            version=PROTOCOL_VERSION,
            nick=self.nick,
            client=client,
            rooms=rooms,
            password=self._password,
            nick_password=self._nick_password,
            resume_token=resume_token,
            after=after or None,
            direct_after=direct_after,
        )

    def changing_nick(self, nick: str, password: str | None) -> None:
        """A change to `nick` (registered with `password`, if any) was asked for."""
        self._nick_passwords[fold(nick)] = password

    def nick_changed(self, old: str, new: str) -> None:
        """Our nick changed from `old` to `new`: log in as `new`, with its password, from now on."""
        self.nick = new
        if fold(new) != fold(old):
            self._nick_password = self._nick_passwords.pop(fold(new), None)

    def registering(self, ref: int, password: str | None) -> None:
        """Request `ref` registers our nick with `password` (None: drops its registration)."""
        self._registering[ref] = password

    def registration_answered(self, ref: int | None, registered: bool) -> None:
        """The server answered a registration: log in with its password, or with none."""
        password = self._registering.pop(ref, None) if ref is not None else None
        self._nick_password = password if registered else None

    def refused(self, ref: int) -> None:
        """Request `ref` was refused: if it was a registration, nothing changes."""
        self._registering.pop(ref, None)


def connection_failure(error: OSError | TimeoutError) -> ConnectionLost:
    """Why a connection attempt failed, as the client reports it."""
    if isinstance(error, TimeoutError):
        return ConnectionLost("the server did not answer in time")
    # asyncio's own message ("Connect call failed ('10.0.0.1', 7878)") says less than the errno's text.
    reason = os.strerror(error.errno) if error.errno else error.strerror or str(error)
    return ConnectionLost(f"cannot connect: {reason}")


def refusal_reason(refused: LoginRefused) -> str:
    """Why a login was refused, as shown while retrying."""
    if refused.code == ErrorCode.NICK_TAKEN:
        return "the nick is still held, probably by our previous connection; retrying"
    return refused.message or refused.code
