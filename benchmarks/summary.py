"""BENCHMARKS.md's summary table, rebuilt from the figures of its sections (no measuring).

Each row of the summary is a `Figure` in common.SUMMARY: a cell of a table in a written section, the peer it is
compared with in the same run, and the machine, date and script from that section's stamp. `write_section` rebuilds
the summary after every benchmark, so this script is for a summary edited by hand or a changed SUMMARY; `--check`
(also part of `python benchmarks/common.py --check`) fails when the table differs from its sections.

Run: python benchmarks/summary.py [--check]
"""

from __future__ import annotations

import sys

from common import REPORT, summary_block, summary_rows, write_summary


def main() -> int:
    _, missing = summary_rows()
    if sys.argv[1:] == ["--check"]:
        stale = summary_block() not in REPORT.read_text()
        problems = missing + (["BENCHMARKS.md: the summary differs from its sections"] if stale else [])
        print("\n".join(problems) or "BENCHMARKS.md: the summary matches its sections")
        return 1 if missing or stale else 0
    write_summary()
    print("\n".join(missing) or f"-> {REPORT} [summary]")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
