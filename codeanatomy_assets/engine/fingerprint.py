"""Stable fingerprints of DataFusion plan texts.

A plan hash identifies the *shape* of a plan in one phase, so that the same query over the same tables
hashes the same in another process, on another day, or from another temporary copy of the tables.

What is hashed
--------------
``sha256("codeanatomy-plan-fingerprint-v1\\n<phase>\\n<normalized text>")`` where the text is the plan's
``display_indent()``. Why that text:

- ``display_indent()`` of logical, optimized and physical plans was identical across processes
  (measured), while the alternatives are not usable: ``LogicalPlan.to_bytes()`` fails for Delta,
  dataset and in-memory tables, and Substrait bytes differ from run to run.
- The phase name is part of the hashed material: a trivial query can print the same text in two phases.

Normalization removes what changes between runs but is not the plan:

- **Table locations.** Every root of a registered table (``RegisteredTable.uri``, with or without a
  ``file://`` scheme or its leading ``/``; DataFusion prints local paths without it) is replaced by
  ``<table:NAME>``, so a copy of the same tables under another temporary directory hashes the same.
- **Dynamic filters.** ``DynamicFilter [ ... ]`` is filled in while the plan runs; it is blanked.
- **Memory addresses** (``0x7f..``) are blanked.
- **File lists.** The paths inside each ``file_groups={...}`` group are sorted: the same set of files
  must hash the same whatever order a listing returned them in.
- Trailing whitespace and blank lines are dropped.

Not normalized, on purpose: table names, column names, literals, partition counts (a physical plan
really differs with ``target_partitions``, which is why plan events record it), and the data
itself: a hash names a plan, not a table version (scan units record versions and file counts).

Known limits: a query calling ``now()`` folds the current time into the optimized plan as a literal, so
its optimized and physical hashes change on every run; paths of tables not passed in ``tables`` stay in
the text.

>>> h1 = plan_fingerprint("physical", "DataSourceExec: file_groups={1 group: [[tmp/a/x.parquet]]}",
...                       table_roots={"t": "/tmp/a"})
>>> h2 = plan_fingerprint("physical", "DataSourceExec: file_groups={1 group: [[var/b/x.parquet]]}",
...                       table_roots={"t": "file:///var/b/"})
>>> h1 == h2
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final

FINGERPRINT_VERSION: Final = 1
_PREFIX: Final = f"codeanatomy-plan-fingerprint-v{FINGERPRINT_VERSION}"
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{6,}")
_DYNAMIC_FILTER: Final = "DynamicFilter ["
_FILE_GROUPS: Final = "file_groups={"


def _closing(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one opened just before ``start`` (or ``len(text)``)."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _blank_dynamic_filters(text: str) -> str:
    out: list[str] = []
    pos = 0
    while (at := text.find(_DYNAMIC_FILTER, pos)) >= 0:
        body = at + len(_DYNAMIC_FILTER)
        end = _closing(text, body, "[", "]")
        out.append(text[pos:body] + " ]")
        pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def _sort_file_groups(text: str) -> str:
    out: list[str] = []
    pos = 0
    while (at := text.find(_FILE_GROUPS, pos)) >= 0:
        body = at + len(_FILE_GROUPS)
        end = _closing(text, body, "{", "}")
        groups = re.sub(
            r"\[([^\[\]]*)\]",
            lambda m: "[" + ", ".join(sorted(p.strip() for p in m.group(1).split(","))) + "]",
            text[body:end],
        )
        out.append(text[pos:body] + groups)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _root_spellings(uri: str) -> list[str]:
    """The ways a table root can appear in a plan text."""
    root = uri.rstrip("/")
    if root.startswith("file://"):
        root = root[len("file://") :]
    spellings = {root, root.lstrip("/"), f"file://{root}"}
    return [s for s in spellings if s]


def normalize_plan_text(text: str, *, table_roots: Mapping[str, str] | None = None) -> str:
    """The plan text with run-to-run noise removed (see the module docstring for the rules)."""
    spellings = [(s, name) for name, uri in (table_roots or {}).items() for s in _root_spellings(uri)]
    # Longest first, so that the root of ``/x/t2`` is not eaten by the root of ``/x/t``.
    for spelling, name in sorted(spellings, key=lambda pair: (-len(pair[0]), pair)):
        text = text.replace(spelling, f"<table:{name}>")
    text = _ADDRESS_RE.sub("0x?", text)
    text = _blank_dynamic_filters(text)
    text = _sort_file_groups(text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


_FILE_LIST_RE: Final = re.compile(r"\[([^\[\]]*)\]")


def _count_files(text: str) -> str:
    """Each group of a ``file_groups={...}`` replaced by its file count: the plan without the file names."""
    out: list[str] = []
    pos = 0
    while (at := text.find(_FILE_GROUPS, pos)) >= 0:
        body = at + len(_FILE_GROUPS)
        end = _closing(text, body, "{", "}")
        counted = _FILE_LIST_RE.sub(lambda m: f"[{len(m.group(1).split(','))} files]", text[body:end])
        out.append(text[pos:body] + counted)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def shape_fingerprint(phase: str, text: str, *, table_roots: Mapping[str, str] | None = None) -> str:
    """Like :func:`plan_fingerprint`, with each file group reduced to its file count: the same query over a
    rewritten table (new file names, same layout) has the same shape. What "Changes since the last run"
    compares, so that rewriting a table is not reported as a plan change.

    >>> a = shape_fingerprint("physical", "DataSourceExec: file_groups={1 group: [[t/x.parquet]]}")
    >>> a == shape_fingerprint("physical", "DataSourceExec: file_groups={1 group: [[t/y.parquet]]}")
    True
    """
    material = f"{_PREFIX}-shape\n{phase}\n{_count_files(normalize_plan_text(text, table_roots=table_roots))}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def plan_fingerprint(phase: str, text: str, *, table_roots: Mapping[str, str] | None = None) -> str:
    """The sha256 hex fingerprint of one phase's plan text (normalized)."""
    material = f"{_PREFIX}\n{phase}\n{normalize_plan_text(text, table_roots=table_roots)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
