"""The thread model has one source, chat_server/server.py's docstring, and it is checked.

Every thread the server code can start (`threading.Thread(..., name=...)`, found by parsing chat_server) and
every lock, condition, semaphore and event it keeps in an attribute must be named in that docstring; so must
every thread a real server runs with every optional thread on (TLS port, metrics, files, a refused
connection). docs/architecture.md, which draws the model, names every thread of the docstring too.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import chat_server
import chat_server.server
from chat_server.server import ChatServer
from chat_server.tls import TlsConfig
from shared.errors import ErrorCode

from .client import ChatTestClient, wait_until

PACKAGE = Path(chat_server.__file__).parent
ARCHITECTURE = Path(__file__).parents[2] / "docs" / "architecture.md"
DOCSTRING = chat_server.server.__doc__ or ""
#: The `threading` primitives that guard or signal something when kept in an attribute.
PRIMITIVES = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier"}


def named(name: str) -> bool:
    """True if the docstring names `name` as ``name``."""
    return f"``{name}``" in DOCSTRING


def documented_threads() -> set[str]:
    """The thread names the docstring's "Threads" section lists (each entry starts a line)."""
    section = DOCSTRING.split("\nThreads\n", 1)[1].split("\nLocks", 1)[0]
    return set(re.findall(r"^``([\w-]+)``", section, re.MULTILINE)) | set(
        re.findall(r"``([\w-]+-tls)``", section)
    )


def is_threading(node: ast.expr, names: set[str]) -> bool:
    """`node` is `threading.X` with X in `names`."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr in names
        and isinstance(node.value, ast.Name)
        and node.value.id == "threading"
    )


def string_values(node: ast.expr, function: ast.AST) -> set[str]:
    """The thread names an expression can have: a literal, an f-string (each field shown as N), either arm of
    a conditional, or a variable assigned one of those in the same function. Empty if none can be told."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.JoinedStr):
        return {"".join(str(v.value) if isinstance(v, ast.Constant) else "N" for v in node.values)}
    if isinstance(node, ast.IfExp):
        return string_values(node.body, function) | string_values(node.orelse, function)
    if isinstance(node, ast.Name):
        values: set[str] = set()
        for assign in ast.walk(function):
            if isinstance(assign, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in assign.targets
            ):
                values |= string_values(assign.value, function)
        return values
    return set()


def _called(func: ast.expr) -> str | None:
    """The name a call calls: ``f`` of ``f(...)`` and of ``module.f(...)``."""
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


#: A node, its enclosing class (or None) and its enclosing function (or the module).
Found = tuple[ast.AST, ast.ClassDef | None, ast.AST]


def walk_with_parents(tree: ast.AST) -> Iterator[Found]:
    """Every node with its enclosing class (or None) and its enclosing function (or the module)."""

    def visit(
        node: ast.AST, cls: ast.ClassDef | None, function: ast.AST
    ) -> Iterator[tuple[ast.AST, ast.ClassDef | None, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            yield child, cls, function
            if isinstance(child, ast.ClassDef):
                yield from visit(child, child, function)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, cls, child)
            else:
                yield from visit(child, cls, function)

    yield from visit(tree, None, tree)


def source_threads_and_locks() -> tuple[dict[str, str], dict[str, str]]:
    """From the source of chat_server: {thread name: where}, {Class.attribute: where} for every primitive."""
    threads: dict[str, str] = {}
    locks: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node, cls, function in walk_with_parents(tree):
            where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and is_threading(node.func, {"Thread", "Timer"}):
                name = next((k.value for k in node.keywords if k.arg == "name"), None)
                values = string_values(name, function) if name is not None else set()
                if not values:
                    threads[f"<unnamed thread at {where}>"] = where
                for value in values:
                    threads[value] = where
            if isinstance(node, ast.Call) and _called(node.func) == "ThreadPoolExecutor":
                # An executor's threads are named PREFIX_0, PREFIX_1...: listed as PREFIX_N.
                prefix = next((k.value for k in node.keywords if k.arg == "thread_name_prefix"), None)
                values = string_values(prefix, function) if prefix is not None else set()
                if not values:
                    threads[f"<unnamed executor at {where}>"] = where
                for value in values:
                    threads[f"{value}_N"] = where
            if cls is None or not isinstance(node, ast.Assign | ast.AnnAssign):
                continue
            assigned = node.value
            if assigned is None:  # an annotation without a value
                continue
            makes_primitive = any(
                (isinstance(n, ast.Call) and is_threading(n.func, PRIMITIVES))
                or (
                    isinstance(n, ast.keyword)
                    and n.arg == "default_factory"
                    and is_threading(n.value, PRIMITIVES)
                )
                for n in ast.walk(assigned)
            )
            if not makes_primitive:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    locks[f"{cls.name}.{target.attr}"] = where
                elif isinstance(target, ast.Name):  # a dataclass field
                    locks[f"{cls.name}.{target.id}"] = where
    return threads, locks


def test_every_thread_in_the_source_is_named_in_the_docstring() -> None:
    """A `threading.Thread` started anywhere in chat_server has a name, and the docstring lists it."""
    threads, _ = source_threads_and_locks()
    assert {"acceptor", "acceptor-tls", "conn-N-reader", "sender", "history"} <= set(
        threads
    )  # the parser works
    missing = {name: where for name, where in threads.items() if name not in documented_threads()}
    assert not missing, f"threads not in chat_server/server.py's docstring: {missing}"


def test_every_lock_in_the_source_is_named_in_the_docstring() -> None:
    """Every lock, condition, semaphore and event kept in an attribute is named (Class.attribute)."""
    _, locks = source_threads_and_locks()
    assert {"Hub.lock", "Tally._lock", "FileStore._lock", "Connection._wake"} <= set(
        locks
    )  # the parser works
    missing = {name: where for name, where in locks.items() if not named(name)}
    assert not missing, f"locks not in chat_server/server.py's docstring: {missing}"


def test_the_docstring_names_no_thread_the_source_lacks() -> None:
    """The docstring does not list a thread that no longer exists."""
    threads, _ = source_threads_and_locks()
    assert documented_threads() <= set(threads)


def test_architecture_md_draws_the_same_threads() -> None:
    """docs/architecture.md links to the docstring and names each of its threads."""
    text = ARCHITECTURE.read_text()
    assert "chat_server/server.py" in text
    missing = {name for name in documented_threads() if f"`{name}`" not in text}
    assert not missing, f"threads of the docstring missing from docs/architecture.md: {missing}"


def test_a_running_server_runs_only_documented_threads(make_server: Callable[..., ChatServer]) -> None:
    """With a TLS port, metrics, files and a refused connection, every thread the server starts is listed."""
    before = set(threading.enumerate())
    server = make_server(tls=TlsConfig(port=0), metrics="127.0.0.1:0", max_clients=1)
    with ChatTestClient(server.address) as client:
        client.login("alice")
        with ChatTestClient(server.address) as refused:
            refused.error(ErrorCode.SERVER_FULL.value)  # lingering in the refusal closer until we close

            def names() -> set[str]:
                started = [t for t in threading.enumerate() if t not in before and t.is_alive()]
                return {re.sub(r"^conn-\d+-", "conn-N-", t.name) for t in started}

            expected = {"acceptor", "acceptor-tls", "sender", "history", "conn-N-reader", "files-sweeper"}
            expected |= {"metrics-http", "refusal-closer"}
            wait_until(lambda: expected <= names(), 10.0, f"the threads {expected} running")
            running = names()
    assert running <= documented_threads(), f"undocumented threads: {running - documented_threads()}"


def test_chat_server_exports_the_server() -> None:
    """`chat_server.ChatServer` is the server class (the layout moved modules, not the entry point)."""
    assert chat_server.ChatServer is ChatServer
