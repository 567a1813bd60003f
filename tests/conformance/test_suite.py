"""The conformance suite (conformance/) against our own server, and its `--serve` mode against clients."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat_client import ChatClient
from conformance.serve import servable
from conformance.transcript import groups, load
from tests.server.process import ServerProcess
from tests.waiting import DEADLINE, wait_until

ROOT = Path(__file__).resolve().parents[2]
#: A test run opens a hundred connections from one address in seconds; a server's defaults would refuse them.
TEST_LIMITS = ("--max-connections-per-minute", "100000", "--max-clients-per-ip", "1000")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real `chat-server` subprocess with a fresh SQLite file."""
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), *TEST_LIMITS) as process:
        assert process.address is not None, process.first_line
        yield process.address


def run_suite(*arguments: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`python -m conformance ...` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "conformance", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_our_server_passes_every_case(server: tuple[str, int]) -> None:
    """Every case of the suite passes against our server, and the report says so case by case."""
    host, port = server
    result = run_suite("--host", host, "--port", str(port))
    cases = load()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS  ") == len(cases)
    assert f"{len(cases)} passed, 0 failed" in result.stdout


def test_a_case_the_server_breaks_fails(server: tuple[str, int], tmp_path: Path) -> None:
    """A case whose expectation the server does not meet is reported FAIL with its place, and exits 1."""
    transcript = tmp_path / "wrong.jsonl"
    transcript.write_text(
        '{"case": "welcome/version-two", "spec": "4"}\n'
        '{"login": "a"}\n'
        '{"expect": "a", "frame": {"type": "pong", "token": 1}, "timeout": 0.5}\n',
        encoding="utf-8",
    )
    host, port = server
    result = run_suite("--host", host, "--port", str(port), "--transcripts", str(transcript))
    assert result.returncode == 1
    assert "FAIL  welcome/version-two  (§4): a: no match within 0.5 s" in result.stdout
    assert "[wrong.jsonl:3]" in result.stdout


def test_the_suite_imports_none_of_our_packages() -> None:
    """The suite is written from the document: it never imports shared, chat_server or chat_client."""
    ours = {"shared", "chat_server", "chat_client"}
    for path in (ROOT / "conformance").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ours, f"{path.name} imports {name}"


def test_every_case_names_a_spec_section_and_says_what_it_checks() -> None:
    """Each case has a spec section and a one-line description (what a reader of the report needs)."""
    for case in load(group=None):
        assert case.spec, case.name
        assert case.doc, case.name


class Served:
    """`python -m conformance --serve` as a subprocess, with the port it printed."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conformance", "--serve", "--port", "0", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("conformance server on 127.0.0.1:"), first
        self.port = int(first.split(":")[1].split(":")[0].split()[0])

    def finish(self) -> tuple[int, str]:
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out + err


def test_serve_plays_the_server_side_of_every_servable_case() -> None:
    """The suite's client side passes against its own server side, case by case (the transcripts agree
    with themselves in both directions)."""
    names = [case.name for case in load() if servable(case)]
    assert len(names) >= 5
    served = Served()
    try:
        for name in names:
            result = run_suite("--port", str(served.port), "-k", name, timeout=60)
            assert result.returncode == 0, result.stdout
    finally:
        code, output = served.finish()
    assert code == 0, output
    assert f"{len(names)} passed, 0 failed" in output


async def test_serve_checks_a_real_client() -> None:
    """Our library client logs in against `--serve` playing "hello/rooms": the served case passes, and the
    client sees itself in the room the server announced."""
    served = Served("-k", "hello/rooms", "--once")
    client = ChatClient("127.0.0.1", served.port, "zoe", rooms=["plaza"])
    try:
        await asyncio.wait_for(client.connect(), DEADLINE)
        await wait_until(lambda: "plaza" in client.rooms, what="the client is in the served room")
        assert client.server_name == "mpchat conformance"
    finally:
        await client.close()  # the served case waits for the client to hang up
        code, output = await asyncio.to_thread(served.finish)
    assert code == 0, output
    assert "PASS  hello/rooms" in output


def toml_value(value: object) -> str:
    """One value of a settings map in TOML (the header holds numbers, strings and lists of strings)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def server_toml(settings: dict[str, object]) -> str:
    """A server.toml holding `settings`: the top-level keys first, then each table (`files`)."""
    lines = [f"{key} = {toml_value(value)}" for key, value in settings.items() if not isinstance(value, dict)]
    for table, values in settings.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def test_our_configured_server_passes_the_configured_group(tmp_path: Path) -> None:
    """The `configured` group passes against our server started with exactly the settings its header names
    (written into a server.toml, as another server's author would configure theirs from docs/conformance.md),
    and the default run leaves the group out."""
    header = groups()["configured"]
    config = tmp_path / "server.toml"
    config.write_text(server_toml(header.server), encoding="utf-8")
    cases = load(group="configured")
    assert len(cases) >= 10
    assert not {case.name for case in cases} & {case.name for case in load()}
    with ServerProcess("--port", "0", "--data-dir", str(tmp_path), "--config", str(config)) as process:
        assert process.address is not None, process.first_line
        host, port = process.address
        result = run_suite("--host", host, "--port", str(port), "--group", "configured")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS  ") == len(cases)
    assert f"{len(cases)} passed, 0 failed" in result.stdout


def test_the_docs_count_the_cases_of_each_group() -> None:
    """docs/conformance.md gives the number of cases of the default and the configured group as the
    transcripts hold them (a count that drifts tells a reader the wrong size of the suite)."""
    page = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    assert f"(files without a header, {len(load())} cases)" in page
    assert f"(`08-configured.jsonl`, {len(load(group='configured'))} cases)" in page
