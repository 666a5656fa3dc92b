"""Every code block of README.md and of the guide (docs/guide/*.md) runs, so none can rot.

Rules for the documents (checked here):

- every fenced block names its language: ``python``, ``bash`` or ``text``;
- ``python`` blocks of one document run in order in one namespace, in a fresh temporary
  directory (so a later block uses what an earlier one made, as a reader would);
- ``bash`` blocks hold ``neurosim ...`` command lines (a trailing backslash continues a line),
  run in that same directory through the command line's ``main`` and expected to exit 0;
- ``text`` blocks are not code (file layouts, diagrams, printed output) and are not run;
- a ``python`` or ``bash`` block that must not run here (it needs minutes, a GPU or a user's
  data) is preceded by ``<!-- docs-test: skip (the reason) -->``; it is reported as skipped
  with that reason.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((.+)\)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})(.*)$")
RUNNABLE = ("python", "bash")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: Optional[str]

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of `doc`, with the skip reason written on the line before each."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    out, k = [], 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        end = next((j for j in range(k + 1, len(lines)) if lines[j].startswith(fence)
                    and not lines[j].strip("`")), None)
        assert end is not None, f"{doc}:{k + 1}: code block never closed"
        prev = next((lines[j] for j in range(k - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(prev.strip())
        out.append(Block(doc, k + 1, info.split()[0] if info else "", "\n".join(lines[k + 1:end]) + "\n",
                         skip.group(1) if skip else None))
        k = end + 1
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]


def test_the_guide_exists_and_every_block_names_its_language():
    names = {d.name for d in DOCS}
    assert {"network.md", "simulate.md", "train.md", "export.md", "data.md"} <= names
    for b in ALL:
        assert b.lang in (*RUNNABLE, "text"), f"{b.where}: fenced block without python/bash/text ({b.lang!r})"
        if b.skip is not None:
            assert b.lang in RUNNABLE, f"{b.where}: a skip marker on a {b.lang!r} block, which never runs"
    assert sum(b.lang in RUNNABLE and b.skip is None for b in ALL) >= 10


def command_lines(code: str) -> list[list[str]]:
    """The `neurosim ...` command lines of a bash block as argv lists (without 'neurosim')."""
    out, pending = [], ""
    for raw in code.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line, comments=True)
        assert argv[0] == "neurosim", f"only neurosim commands run here, got {line!r}"
        out.append(argv[1:])
    return out


def run_document(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> int:
    from neurosim.cli.app import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs:{doc.name}"}
    ran = 0
    for b in blocks(doc):
        if b.lang not in RUNNABLE or b.skip is not None:
            continue
        if b.lang == "python":
            try:
                exec(compile(b.code, b.where, "exec"), namespace)  # noqa: S102 - the document's own example
            except Exception as exc:
                raise AssertionError(f"{b.where}: the python block failed: {exc!r}") from exc
        else:
            for argv in command_lines(b.code):
                code = main(argv)
                err = capsys.readouterr().err
                assert code == 0, f"{b.where}: `neurosim {shlex.join(argv)}` exited {code}: {err[-2000:]}"
        ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_document_runs(doc, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("brian2")
    pytest.importorskip("nir")
    ran = run_document(doc, tmp_path, monkeypatch, capsys)
    assert ran >= 1, f"{doc.name}: no block ran"


SKIPPED = [b for b in ALL if b.skip is not None]


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_marked_blocks_are_skipped_with_their_reason(block):
    pytest.skip(f"{block.where} not run: {block.skip}")


def test_readme_build_a_network_comes_before_training():
    """The README teaches building a network first, and its first Python example is that one."""
    readme = [b for b in blocks(ROOT / "README.md") if b.lang == "python"]
    assert "ns.Network(" in readme[0].code and "ns.save(" in readme[0].code and "ns.load(" in readme[0].code
