"""`facepoints web`: serve the browser page built into the package (website.py), cross-origin isolated."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FacepointsError


def add(sub):
    p = sub.add_parser(
        "web",
        help="serve the browser page (landmarks in the browser, webcam tracking) on this machine",
        description="Serve the browser page built into the package, with the COOP/COEP headers that make it "
        "cross-origin isolated (onnxruntime-web then runs wasm threads). Open the printed URL in a browser.",
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: all)"
    )
    p.add_argument("--site", default=None, help="serve this built site folder instead of the package's")
    p.set_defaults(func=run)


def run(args):
    from ..website import PACKAGE_SITE, make_server  # the verb's own imports: commands/__init__.py

    site = Path(args.site) if args.site else PACKAGE_SITE
    if not (site / "index.html").exists() or not (site / "model.json").exists():
        how = (
            "give a folder built by scripts/build_web.py"
            if args.site
            else "this install has no built page; in a source checkout run `cd web && npm ci` and "
            "`python scripts/build_web.py --replace src/facepoints/web_site`"
        )
        raise FacepointsError(f"{site}: not a built site ({how})")
    server = make_server(site, args.host, args.port, isolated=True)
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    print(
        f"facepoints web: serving {site} at http://{shown}:{port}/ (cross-origin isolated: COOP same-origin, "
        "COEP require-corp); Ctrl+C stops",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("facepoints web: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
