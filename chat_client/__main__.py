"""``chat-client``: the command line of the mpchat client.

    chat-client                                   the connect screen (host, port and nick remembered)
    chat-client --host H --port P --nick N        connect directly
    chat-client --local [--nick N]                start a local server process and connect to it
    chat-client --plain --host H --nick N         line mode: stdin in, one line per event out
    chat-client --discover                        list the chat servers announcing themselves on the LAN
    chat-client --tls --host H --port P           TLS; the server's key is pinned on first use
    chat-client --forget-pin H:P                  remove a pinned server key (after a deliberate key change)

Passwords never go on the command line (it shows in `ps`): `--password-file`/`--nick-password-file` read
the first line of a file, or set MPCHAT_PASSWORD / MPCHAT_NICK_PASSWORD. They are never saved.

The Textual TUI is imported only when it is used, so the line mode starts fast and runs without it; the TUI
itself imports the network and chat modules only after the connect screen is drawn (chat_client/tui/app.py).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chat_client.discover_cli import add_discover_arguments, lan_listener_factory, run_discover
from chat_client.net.options import DEFAULT_DRAIN_TIMEOUT, DEFAULT_LAG_WARNING, ClientOptions
from chat_client.net.pins import PinStore, PinStoreError, parse_pin_key
from chat_client.settings import DEFAULT_HOST, DESKTOP_NOTIFY_STYLES, data_dir, load_settings, save_settings
from shared import nick_problem, room_problem
from shared.addresses import parse_servers
from shared.fingerprint import BadFingerprint, grouped, parse_fingerprint
from shared.limits import DEFAULT_MAX_NICK, DEFAULT_MAX_ROOM

#: Environment variables that may hold the server's password and the registered nick's password.
PASSWORD_ENV = "MPCHAT_PASSWORD"
NICK_PASSWORD_ENV = "MPCHAT_NICK_PASSWORD"
#: Exit status after Ctrl-C in the line mode (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

EPILOG = """\
commands in the input line (TUI and --plain):
  /join ROOM  /leave [ROOM]  /msg NICK [TEXT]  /me ACTION  /nick NEW [PASSWORD]  /topic [TEXT]
  /away [MESSAGE]  /who [ROOM]  /rooms  /send PATH  /get ID  /cancel N  /register [PASSWORD [OLD]]
  /unregister [PASSWORD]  /help [COMMAND]  /quit [REASON]

passwords:
  the server's password: --password-file FILE or MPCHAT_PASSWORD; a registered nick's password:
  --nick-password-file FILE or MPCHAT_NICK_PASSWORD (the first line of FILE). Never saved; the TUI asks
  for them when the server wants them, and so does --plain when its input is a terminal.
  /register and /unregister typed alone ask for the password (masked; prefer it to typing it inline);
  with --plain and a pipe, the next input line is the password.

files:
  settings (last server, nick, recent servers, theme) in the platform config folder
  (~/.config/mpchat/client.json on Linux; override with MPCHAT_CONFIG_DIR);
  --local keeps the server's history in the platform data folder
  (~/.local/share/mpchat on Linux; override with MPCHAT_DATA_DIR);
  downloads (/get) go to --downloads, else the "downloads" setting, else ~/Downloads/mpchat
  (override with MPCHAT_DOWNLOADS_DIR).
  pinned TLS server keys are in known_servers.json in that folder.

exit status: 0 after /quit or the end of input with every message delivered, 2 when the login fails
(or the server cannot be reached), 3 (--plain) when some message lines were not delivered (the count is
on stderr), 130 after Ctrl-C (--plain), 1 on other errors.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents every option in --help)."""
    parser = argparse.ArgumentParser(
        prog="chat-client",
        description="mpchat terminal chat client: a full-screen TUI, or a plain line mode with --plain.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        help="server host name or address (connects directly, with --nick); several servers of one chat "
        "(a cluster) as HOST[:PORT],HOST[:PORT],...: tried in turn, and the client fails over between them",
    )
    parser.add_argument("--port", type=int, help="server port (default: the last one used, else 7878)")
    parser.add_argument("--nick", help="your nick (default: the last one used)")
    parser.add_argument("--room", help="room to join on connect (default: the server's default room)")
    parser.add_argument(
        "--plain", action="store_true", help="line mode: read stdin, print one line per event"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="start a chat server process on 127.0.0.1 (port --port, or any free one), connect to it, "
        "stop it on exit",
    )
    parser.add_argument("--theme", help="Textual theme for the TUI (e.g. nord, gruvbox, textual-light)")
    parser.add_argument("--bell", action="store_true", help="ring the terminal bell when you are mentioned")
    parser.add_argument(
        "--desktop-notify",
        choices=DESKTOP_NOTIFY_STYLES,
        help="also ask the terminal for a desktop notification: osc9 (iTerm2, WezTerm, Windows Terminal, "
        "foot, kitty), osc777 (urxvt, foot, Ghostty, VTE), osc99 (kitty), or off (remembered)",
    )
    parser.add_argument(
        "--inspect",
        action="store_true",
        help="open the wire inspector (F12) as soon as the chat starts: every frame in and out",
    )
    parser.add_argument(
        "--downloads",
        type=Path,
        metavar="DIR",
        help="save downloaded files (/get) in this folder (remembered; default ~/Downloads/mpchat)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_DRAIN_TIMEOUT,
        help="--plain: at the end of input, wait for the server to acknowledge every message for as long as "
        f"it acknowledges one at least every SECONDS (default {DEFAULT_DRAIN_TIMEOUT:g}); then exit 3 "
        "naming how many were not delivered",
    )
    parser.add_argument(
        "--lag-warning",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_LAG_WARNING,
        help="--plain: print a line when the lag reaches SECONDS "
        f"(default {DEFAULT_LAG_WARNING:g}; 0: never) and when it is back under",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="FILE",
        help="log connects, logins, disconnects, reconnects, resumes and errors (with debug detail) to FILE",
    )
    parser.add_argument(
        "--password-file", type=Path, metavar="FILE", help=f"the server's password (or set {PASSWORD_ENV})"
    )
    parser.add_argument(
        "--nick-password-file",
        type=Path,
        metavar="FILE",
        help=f"your registered nick's password (or set {NICK_PASSWORD_ENV})",
    )
    tls = parser.add_argument_group("TLS (trust on first use, like SSH)")
    tls.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS; the first connection pins the server's key, later ones refuse another key",
    )
    tls.add_argument(
        "--fingerprint",
        metavar="HEX",
        help="the server key's SHA-256 fingerprint (from its operator): refuse any other, even the first "
        "time (implies --tls)",
    )
    tls.add_argument(
        "--forget-pin", metavar="HOST:PORT", help="remove the pinned key of that server, and exit"
    )
    tls.add_argument("--pins", action="store_true", help="list the pinned server keys, and exit")
    add_discover_arguments(parser)
    return parser


def _secret(parser: argparse.ArgumentParser, path: Path | None, variable: str) -> str | None:
    """A password from the first line of `path`, else from the environment variable, else None."""
    if path is None:
        return os.environ.get(variable) or None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        parser.error(f"cannot read {path}: {error}")
    if not lines or not lines[0]:
        parser.error(f"{path} is empty")
    return lines[0]


def _check_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.nick is not None and (problem := nick_problem(args.nick, DEFAULT_MAX_NICK)):
        parser.error(f"--nick: {problem}")
    if args.room is not None and (problem := room_problem(args.room.lstrip("#"), DEFAULT_MAX_ROOM)):
        parser.error(f"--room: {problem}")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if not args.drain_timeout > 0:
        parser.error("--drain-timeout must be a positive number of seconds")
    if not args.lag_warning >= 0:
        parser.error("--lag-warning must be 0 (off) or a positive number of seconds")
    if args.local and (args.tls or args.fingerprint):
        parser.error(
            "--tls and --fingerprint are for remote servers; --local runs a plaintext one on 127.0.0.1"
        )
    if args.host is not None:
        try:
            parse_servers(args.host, args.port or 1)  # only the form is checked here; the port comes later
        except ValueError as error:
            parser.error(f"--host: {error}")
    if args.fingerprint is not None:
        try:
            args.fingerprint = parse_fingerprint(args.fingerprint)
        except BadFingerprint as error:
            parser.error(f"--fingerprint: {error}")


def run_pins(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``--forget-pin HOST:PORT`` and ``--pins``: manage the pinned server keys."""
    pins = PinStore()
    try:
        if args.forget_pin is not None:
            try:
                key = parse_pin_key(args.forget_pin)
            except ValueError as error:
                parser.error(f"--forget-pin: {error}")
            if not pins.forget(key):
                print(f"chat-client: no key is pinned for {key} (in {pins.path})", file=sys.stderr)
                return 1
            print(f"removed the pinned key of {key}; the next TLS connection pins the key it presents")
            return 0
        known = pins.load()
    except PinStoreError as error:
        print(f"chat-client: {error}", file=sys.stderr)
        return 1
    for key, fingerprint in sorted(known.items()):
        print(f"{key}  {grouped(fingerprint)}")
    if not known:
        print(f"no pinned server keys (in {pins.path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_names(parser, args)
    if args.discover:
        return run_discover(args)
    if args.forget_pin is not None or args.pins:
        return run_pins(args, parser)
    if args.log_file:
        logging.basicConfig(
            filename=args.log_file,
            level=logging.DEBUG,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    else:
        # Never let log records reach the terminal: they would tear the TUI or pollute --plain output.
        logging.getLogger().addHandler(logging.NullHandler())
        logging.lastResort = None
    settings = load_settings()
    if args.downloads is not None:
        settings.downloads = str(args.downloads.expanduser().resolve())
        save_settings(settings)
    options = ClientOptions(downloads_dir=Path(settings.downloads) if settings.downloads else None)
    room = args.room.lstrip("#") if args.room else None
    password = _secret(parser, args.password_file, PASSWORD_ENV)
    nick_password = _secret(parser, args.nick_password_file, NICK_PASSWORD_ENV)
    with contextlib.ExitStack() as stack:
        host, port = args.host, args.port
        if args.local:
            from chat_client.local import LocalServerError, local_server

            try:
                host, port = stack.enter_context(local_server(args.port or 0, data_dir()))
            except LocalServerError as error:
                print(f"chat-client: {error}", file=sys.stderr)
                return 1
        nick = args.nick or (settings.nick if (args.local or args.plain) else None)
        if args.local and not nick:
            from chat_client.local import login_nick

            nick = login_nick()  # zero configuration: `chat-client --local` alone connects at once
        if args.plain:
            if not nick:
                parser.error("--plain needs --nick (no nick was remembered from an earlier run)")
            import asyncio  # here: the TUI imports it after pausing the garbage collector (tui/startup.py)

            from chat_client.net.trust import tls_for
            from chat_client.plain.linemode import ask_on_terminal, run_plain

            host = host or settings.host or DEFAULT_HOST
            port = port or settings.port
            wants_tls = args.tls or (settings.tls and args.host is None and not args.local)
            trust = tls_for(host, port, tls=wants_tls, fingerprint=args.fingerprint, pins=PinStore())
            try:
                return asyncio.run(
                    run_plain(
                        host,
                        port,
                        nick,
                        room=room,
                        options=options,
                        password=password,
                        nick_password=nick_password,
                        ask=ask_on_terminal if sys.stdin.isatty() else None,
                        tls=trust,
                        drain_timeout=args.drain_timeout,
                        lag_warning=args.lag_warning,
                    )
                )
            except KeyboardInterrupt:
                # Ctrl-C: asyncio.run has cancelled the session, which logged out on its way (and a password
                # prompt turned the terminal's echo back on); exit quietly, as a shell expects.
                return EXIT_INTERRUPTED
        from chat_client.tui.startup import pause_gc, tune_gc

        pause_gc()  # until the first frame is drawn and the chat modules are loaded: see tui/startup.py
        from chat_client.tui.app import ChatApp
        from chat_client.tui.keys import report_alt_enter

        report_alt_enter()  # before the app reads the terminal: see tui/keys.py
        app = ChatApp(
            host=host,
            port=port,
            nick=nick,
            room=room,
            connect_now=bool(host and nick),
            theme=args.theme,
            bell=args.bell or None,
            desktop_notify=args.desktop_notify,
            inspect=args.inspect,
            remember_server=not args.local,
            options=options,
            tls=True if args.tls or args.fingerprint else None,
            fingerprint=args.fingerprint,
            # A local server is the one to use: nothing to discover, and nothing to announce on the LAN.
            discovery=None if args.local else lan_listener_factory(args.discover_address, args.discover_port),
            password=password,
            nick_password=nick_password,
            # Once everything is loaded, but after the first frame: its gc.collect() takes 10-30 ms.
            after_start=tune_gc,
        )
        return app.run() or 0


if __name__ == "__main__":
    sys.exit(main())
