"""The registration dialogs: `/register` typed alone asks for the new password twice, masked; `/unregister`
typed alone asks for the current one.

A password typed once into a masked field can hold a typo nobody sees, and a registered nick whose password
is unknown is lost to its owner: so the dialog asks twice and compares. It also takes the current password,
needed to change the password of a nick that is registered already. Nothing here is saved or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.widgets.button import ButtonVariant


@dataclass(frozen=True, slots=True, repr=False)
class NewPassword:
    """What the dialog returns: the new password, and the current one when changing it."""

    password: str
    old_password: str | None


#: What a password dialog closes with.
ResultT = TypeVar("ResultT")


class PasswordDialog(ModalScreen[ResultT]):
    """What both dialogs share: a title, masked fields, an error line, a confirm button and Cancel.

    A subclass names its fields and its confirm button, and handles the confirm (`submit`); Escape or Cancel
    closes it with None.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    #: (id, label, placeholder) of each masked field, top to bottom (`AUTO_FOCUS` names the first).
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]]
    #: (label, id, variant) of the confirm button.
    CONFIRM: ClassVar[tuple[str, str, ButtonVariant]]

    def __init__(self, nick: str) -> None:
        super().__init__()
        self._nick = nick

    def heading(self, nick: str) -> str:
        """The dialog's title line."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        """The title, the masked fields, the error line and the buttons."""
        with Vertical(id="register-dialog"):
            yield Label(Text(self.heading(self._nick), end=""), id="register-title")
            for field_id, label, hint in self.FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(id=field_id, placeholder=hint, password=True)
            yield Static(id="register-status")
            with Horizontal(id="register-buttons"):
                label, button_id, variant = self.CONFIRM
                yield Button(label, id=button_id, variant=variant)
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without doing anything."""
        self.dismiss(None)

    def _field(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def _problem(self, text: str, field_id: str) -> None:
        self.query_one("#register-status", Static).update(Text(text, style="bold red", end=""))
        self.query_one(f"#{field_id}", Input).focus()


class RegisterDialog(PasswordDialog[NewPassword | None]):
    """Asks for a nick's new password twice (and the current one, optionally); None when cancelled."""

    AUTO_FOCUS = "#new-password"
    FIELDS = (
        ("new-password", "Password", "the new password"),
        ("again-password", "Again", "the same, to catch a typo"),
        ("old-password", "Current", "only to change a registered nick's password"),
    )
    CONFIRM = ("Register", "register", "primary")

    def heading(self, nick: str) -> str:
        """The dialog's title line."""
        return f"Register the nick {nick}"

    @on(Input.Submitted)
    @on(Button.Pressed, "#register")
    def submit(self) -> None:
        """Check the two new passwords match, then close with them."""
        password, again = self._field("new-password"), self._field("again-password")
        if not password:
            self._problem("type the new password", "new-password")
        elif password != again:
            self.query_one("#again-password", Input).value = ""
            self._problem("the two passwords differ: type it again", "again-password")
        else:
            self.dismiss(NewPassword(password, self._field("old-password") or None))


class UnregisterDialog(PasswordDialog[str | None]):
    """Asks for the nick's current password (masked) to drop its registration; None when cancelled."""

    AUTO_FOCUS = "#unregister-password"
    FIELDS = (("unregister-password", "Password", "the nick's password"),)
    CONFIRM = ("Unregister", "unregister", "error")

    def heading(self, nick: str) -> str:
        """The dialog's title line."""
        return f"Drop the registration of {nick}"

    @on(Input.Submitted)
    @on(Button.Pressed, "#unregister")
    def submit(self) -> None:
        """Close with the password, once one is typed."""
        if password := self._field("unregister-password"):
            self.dismiss(password)
        else:
            self._problem("type the nick's password", "unregister-password")
