"""The registration dialogs: `/register` typed alone asks for the new password twice, masked; `/unregister`
typed alone asks for the current one.

A password typed once into a masked field can hold a typo nobody sees, and a registered nick whose password
is unknown is lost to its owner: so the dialog asks twice and compares. It also takes the current password,
needed to change the password of a nick that is registered already. Nothing here is saved or logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True, slots=True, repr=False)
class NewPassword:
    """What the dialog returns: the new password, and the current one when changing it."""

    password: str
    old_password: str | None


class RegisterDialog(ModalScreen[NewPassword | None]):
    """Asks for a nick's new password twice (and the current one, optionally); None when cancelled."""

    AUTO_FOCUS = "#new-password"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, nick: str) -> None:
        super().__init__()
        self._nick = nick

    def compose(self) -> ComposeResult:
        """Three masked fields, the error line and the buttons."""
        with Vertical(id="register-dialog"):
            yield Label(Text(f"Register the nick {self._nick}", end=""), id="register-title")
            for field_id, label, hint in (
                ("new-password", "Password", "the new password"),
                ("again-password", "Again", "the same, to catch a typo"),
                ("old-password", "Current", "only to change a registered nick's password"),
            ):
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(id=field_id, placeholder=hint, password=True)
            yield Static(id="register-status")
            with Horizontal(id="register-buttons"):
                yield Button("Register", id="register", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#register")
    def submit(self) -> None:
        """Check the two new passwords match, then close with them."""
        password = self.query_one("#new-password", Input).value
        again = self.query_one("#again-password", Input).value
        old = self.query_one("#old-password", Input).value or None
        if not password:
            self._problem("type the new password", "#new-password")
        elif password != again:
            self.query_one("#again-password", Input).value = ""
            self._problem("the two passwords differ: type it again", "#again-password")
        else:
            self.dismiss(NewPassword(password, old))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without registering."""
        self.dismiss(None)

    def _problem(self, text: str, field: str) -> None:
        self.query_one("#register-status", Static).update(Text(text, style="bold red", end=""))
        self.query_one(field, Input).focus()


class UnregisterDialog(ModalScreen[str | None]):
    """Asks for the nick's current password (masked) to drop its registration; None when cancelled."""

    AUTO_FOCUS = "#unregister-password"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, nick: str) -> None:
        super().__init__()
        self._nick = nick

    def compose(self) -> ComposeResult:
        """One masked field, the error line and the buttons (styled as the registration dialog)."""
        with Vertical(id="register-dialog"):
            yield Label(Text(f"Drop the registration of {self._nick}", end=""), id="register-title")
            with Horizontal(classes="field"):
                yield Label("Password", classes="field-label")
                yield Input(id="unregister-password", placeholder="the nick's password", password=True)
            yield Static(id="register-status")
            with Horizontal(id="register-buttons"):
                yield Button("Unregister", id="unregister", variant="error")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#unregister")
    def submit(self) -> None:
        """Close with the password, once one is typed."""
        password = self.query_one("#unregister-password", Input).value
        if not password:
            self.query_one("#register-status", Static).update(
                Text("type the nick's password", style="bold red", end="")
            )
            self.query_one("#unregister-password", Input).focus()
        else:
            self.dismiss(password)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without unregistering."""
        self.dismiss(None)
