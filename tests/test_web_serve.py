"""`facepoints web`: serves a built site with the COOP/COEP headers (the page is cross-origin isolated in
Chromium and runs wasm threads), binds 127.0.0.1 by default, refuses a busy port in one line."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from facepoints import website
from facepoints.cli import main

from .conftest import one_line_error

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if (why := website.browser_missing()) is not None:
        if os.environ.get("FACEPOINTS_REQUIRE_WEB") == "1":
            raise RuntimeError(f"FACEPOINTS_REQUIRE_WEB=1 but {why}")
        pytest.skip(why)
    out = website.build(tmp_path_factory.mktemp("web") / "site")
    (out / "test").mkdir()
    shutil.copy2(ROOT / "examples" / "grace_hopper.jpg", out / "test")
    return out


@pytest.fixture(scope="module")
def served(site):
    with facepoints_web("--site", str(site)) as (url, line):
        yield url, line


@contextlib.contextmanager
def facepoints_web(*args):
    """`facepoints web --port 0 ARGS` as a user runs it (a process); yields its URL from its first line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facepoints", "web", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # the process prints its URL once it listens
        assert line.startswith("facepoints web: serving "), (line, proc.poll())
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        yield url, line
    finally:
        proc.terminate()
        proc.wait(timeout=START_TIMEOUT_S)


def test_serves_the_site_with_the_isolation_headers_on_localhost(served):
    url, line = served
    assert url.startswith("http://127.0.0.1:") and "cross-origin isolated" in line
    for path in ("", "model.json", "ort/ort-wasm-simd-threaded.wasm", "landmarks.onnx"):
        with urllib.request.urlopen(url + path, timeout=START_TIMEOUT_S) as r:
            assert r.status == 200
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            if path.endswith(".wasm"):
                assert r.headers["Content-Type"] == "application/wasm"


def test_the_page_is_cross_origin_isolated_and_runs_threads(site, served, playwright, tmp_path):
    """In Chromium the served page is crossOriginIsolated, so onnxruntime-web gets wasm threads (one per core, up to
    4), and it still finds the face with its points and trust outputs; the same site from a server without the
    headers is not isolated and runs one thread."""
    url, _ = served
    ctx = website.launch_chromium(playwright, tmp_path / "profile")
    try:
        ctx.set_default_timeout(START_TIMEOUT_S * 1000)
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function("window.facepoints !== undefined")
        page.evaluate("async () => await window.facepoints.ready")
        assert page.evaluate("window.crossOriginIsolated") is True
        runtime = page.evaluate("window.facepoints.runtime")
        assert runtime["isolated"] is True
        cores = page.evaluate("navigator.hardwareConcurrency")
        assert runtime["threads"] == max(1, min(4, cores))
        assert "cross-origin isolated" in page.locator("#runtime").inner_text()
        faces = page.evaluate(
            """async () => (await window.facepoints.show('test/grace_hopper.jpg')).faces
                .map((f) => ({points: f.points.length, presence: f.presence, visibility: f.visibility.length}))"""
        )
        assert faces == [{"points": 68, "presence": faces[0]["presence"], "visibility": 68}]
        assert 0.5 < faces[0]["presence"] <= 1
        with website.serve(site, isolated=False) as plain:
            page.goto(plain)
            page.evaluate("async () => await window.facepoints.ready")
            assert page.evaluate("window.crossOriginIsolated") is False
            assert page.evaluate("window.facepoints.runtime.threads") == 1
        assert errors == []
    finally:
        ctx.close()


def test_a_busy_port_is_one_line(site, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code = main(["web", "--port", str(port), "--site", str(site)])
    assert code == 1
    one_line_error(capsys, f"127.0.0.1:{port}", "port busy")


def test_a_folder_that_is_not_a_site_is_one_line(tmp_path, capsys):
    assert main(["web", "--site", str(tmp_path)]) == 1
    one_line_error(capsys, str(tmp_path), "not a built site")


def test_serves_the_site_built_into_the_package(capsys):
    """Without --site: the site in the package (package data, built by `scripts/build_web.py --replace
    src/facepoints/web_site`, as .ci/run does); an install without it says how to build it, in one line."""
    if (website.PACKAGE_SITE / "model.json").exists():
        with facepoints_web() as (url, line):
            assert str(website.PACKAGE_SITE) in line
            with urllib.request.urlopen(url + "model.json", timeout=START_TIMEOUT_S) as r:
                assert r.status == 200 and r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    else:
        assert main(["web", "--port", "0"]) == 1
        one_line_error(capsys, str(website.PACKAGE_SITE), "scripts/build_web.py --replace src/facepoints/web_site")
