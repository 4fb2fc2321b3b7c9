"""Table layout health: what makes a Delta table slow or expensive to read, measured from its log.

The log health (:mod:`codeanatomy_assets.delta.log`) says whether the log can be read; this module says how
well the table is laid out for reading, from the same checkpoint and commits:

- **files**: live file count, total bytes, a size histogram and the share of small files;
- **statistics**: per column, how many live files carry min/max values and null counts (a file without
  them can never be skipped by a predicate on that column);
- **partitions**: count and skew (largest and median partition by bytes and by files);
- **tombstones**: removed files still listed in the log, how many are still on storage (vacuum debt), and
  how many are past the table's deleted-file retention;
- **deletion vectors**: files carrying one and the rows they delete;
- **log**: commits and JSON bytes since the last checkpoint against the checkpoint interval, the size of
  ``_delta_log``, commits past the log retention, and each ``<v>.crc`` checksum compared with the replay.

Each problem becomes a :class:`LayoutFinding` with a severity, a one-line message and a one-line
recommended action; the :class:`~codeanatomy_assets.delta.maintenance` plan turns the fixable ones into
deltalake operations. Nothing here raises on a damaged table: the replay skips what it cannot read and says
so in a finding.
"""

from codeanatomy_assets.delta.layout.reader import read_table_layout
from codeanatomy_assets.delta.layout.records import (
    LayoutFinding,
    LayoutFindingCode,
    LayoutThresholds,
    TableLayout,
    Treatment,
)

__all__ = [
    "LayoutFinding",
    "LayoutFindingCode",
    "LayoutThresholds",
    "TableLayout",
    "Treatment",
    "read_table_layout",
]
