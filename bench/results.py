"""bench/RESULTS.md: one ``## section`` per benchmark case; a run replaces its own section
and keeps the others, so every number in the file says which run and command it came from."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEAD = "# Benchmark results\n"


def write_section(title: str, body: list[str], path: Path = RESULTS) -> None:
    """Replace (or append) the section ``## title`` with ``body`` lines."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEAD
    sections = re.split(r"(?m)^(?=## )", text)
    head, rest = sections[0], sections[1:]
    new = f"## {title}\n\n" + "\n".join(body).strip() + "\n\n"
    kept = [s for s in rest if s.splitlines()[0] != f"## {title}"]
    if len(kept) == len(rest):
        kept.append(new)
    else:
        index = next(i for i, s in enumerate(rest) if s.splitlines()[0] == f"## {title}")
        kept.insert(index, new)
    path.write_text(head.rstrip() + "\n\n" + "".join(s.rstrip() + "\n\n" for s in kept).rstrip()
                    + "\n", encoding="utf-8")  # fmt: skip


def write_head(lines: list[str], path: Path = RESULTS) -> None:
    """Replace what stands before the first ``## `` section (the file's head) with the
    title and ``lines``; the sections are kept as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEAD
    sections = re.split(r"(?m)^(?=## )", text)[1:]
    head = HEAD + "\n" + "\n".join(lines).strip() + "\n"
    path.write_text(head + "".join("\n" + s.rstrip() + "\n" for s in sections), encoding="utf-8")


def markdown_table(cells: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(cells[0]) + " |",
        "|" + "---|" * len(cells[0]),
        *("| " + " | ".join(row) + " |" for row in cells[1:]),
    ]
