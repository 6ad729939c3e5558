"""`facepoints VERB ...`: one verb per job (detect, batch, prepare, train, evaluate, export, web), each in commands/."""

from __future__ import annotations

import argparse
import sys

from .commands import VERBS
from .config import check_detector_threshold
from .errors import FacepointsError, UsageError, quiet_third_party


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`facepoints detect: error: ...`, exit 2), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="facepoints", description="68-point face landmarks on a plain CPU")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb in VERBS:
        verb.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_detector_threshold(
            getattr(args, "detector", None), getattr(args, "det_threshold", None), "argument --det-threshold"
        )
    except UsageError as e:
        parser.error(str(e))
    try:
        code = args.func(args)
    except UsageError as e:  # an option's value, found bad before any work: argparse's exit code
        print(f"facepoints: error: {e}", file=sys.stderr)
        return 2
    except FacepointsError as e:
        print(f"facepoints: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the system refused a file operation (disk, permissions): one line; bugs still raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"facepoints: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facepoints: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
