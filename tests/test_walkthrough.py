"""docs/walkthrough.md names modules that exist, and its count of the modules on a `say`'s path adds up."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "walkthrough.md"
#: A module named in full on the page (`chat_client/net/connection.py`).
FULL_PATH = re.compile(r"`((?:chat_client|chat_server|shared)/[\w/]+\.py)`")
#: The rows of the page's count table, and the package each row's short paths are relative to.
ROWS = {"client": "chat_client", "shared": ".", "server": "chat_server"}


def count_rows(page: str) -> dict[str, tuple[list[str], int]]:
    """Each row of the table under "The modules on the path": the modules it lists and the count it gives."""
    table = page[page.index("## The modules on the path") :]
    rows: dict[str, tuple[list[str], int]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].split(",")[0] in ROWS:
            rows[cells[0].split(",")[0]] = (re.findall(r"`([\w/]+\.py)`", cells[1]), int(cells[2]))
    return rows


def test_every_module_the_walkthrough_names_exists() -> None:
    """A module the page sends the reader to is there (a moved module must take the page with it)."""
    named = set(FULL_PATH.findall(PAGE.read_text(encoding="utf-8")))
    assert named, "the page names no module in full"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs/walkthrough.md names modules that do not exist: {missing}"


def test_the_count_of_modules_on_the_path_adds_up() -> None:
    """Each row's count is the number of modules it lists, each of them exists, and the total is their sum."""
    page = PAGE.read_text(encoding="utf-8")
    rows = count_rows(page)
    assert set(rows) == set(ROWS)
    for part, (modules, count) in rows.items():
        assert len(modules) == len(set(modules)) == count, (part, modules, count)
        missing = [module for module in modules if not (ROOT / ROWS[part] / module).is_file()]
        assert not missing, (part, missing)
    total = re.search(r"^\| \*\*total\*\* \| \| \*\*(\d+)\*\* \|$", page, re.MULTILINE)
    assert total is not None
    assert int(total.group(1)) == sum(count for _modules, count in rows.values())
