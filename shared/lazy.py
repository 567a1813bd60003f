"""Package exports imported on first use (PEP 562), so importing one submodule does not import them all.

Every `import shared.text` or `import chat_client.tui...` runs the package's ``__init__`` first. If that file
imported its public names eagerly, the TUI's connect screen would build every message class, the codec,
msgpack, TLS and the client library before drawing its first frame. Measured (docs/client.md, "Start-up"):
importing the TUI's modules went from 0.40-0.45 s to 0.22-0.27 s when `shared` and `chat_client` stopped
doing that. This module is that optimisation, in one place:

    __getattr__, __dir__ = lazy_exports(__name__, {"ChatClient": "library.client", ...})

A package keeps the real imports under ``if TYPE_CHECKING:`` for type checkers and readers; at run time
`__getattr__` imports a name's home module the first time the name is used and keeps the name in the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str], *, fallback: str | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the `__getattr__` and `__dir__` of `package`, whose public names live in other modules.

    `homes` maps each public name to its module, relative to the package. A name not in `homes` is looked
    up in the `fallback` module (if any), among that module's own `__all__`. The package's `__all__` is both.
    """
    namespace = vars(importlib.import_module(package))

    def fallback_names() -> Iterable[str]:
        if fallback is None:
            return ()
        names: list[str] = importlib.import_module(f"{package}.{fallback}").__all__
        return names

    def __getattr__(name: str) -> Any:
        if name == "__all__":  # `from package import *`, and tools that list a package's names
            return [*homes, *fallback_names()]
        home = homes.get(name)
        if home is None and fallback is not None and not name.startswith("_") and name in fallback_names():
            home = fallback
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes, *fallback_names()})

    return __getattr__, __dir__
