"""Build the static browser site of facepoints into a folder: `python scripts/build_web.py DIR`.

What lands in DIR: see facepoints/website.py. Serve it with `facepoints web --site DIR` (cross-origin isolated)
and open http://127.0.0.1:8000/. `python scripts/build_web.py --replace src/facepoints/web_site` puts it into the
package (package data), which `facepoints web` serves without --site; do it before building the wheel.
"""

from __future__ import annotations

import argparse
import sys

from facepoints.errors import FacepointsError
from facepoints.website import build


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="folder to write the site into (new or empty)")
    p.add_argument("--model", default=None, help="shipped model name or .pt path (default: the shipped default)")
    p.add_argument("--replace", action="store_true", help="replace a site built there before")
    args = p.parse_args(argv)
    try:
        out = build(args.out, args.model, replace=args.replace)
    except FacepointsError as e:
        print(f"build_web: error: {e}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"site -> {out} ({size / 1e6:.1f} MB); serve it with: facepoints web --site {out}  and open http://127.0.0.1:8000/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
