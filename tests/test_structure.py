"""The package's structure. No import cycles (each module imports alone), function-level imports
only where they are explained, nothing outside src/ leans on train.py's helpers, and lists kept for a fast
`--help` agree with the registries they stand for."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "facepoints"
MODULES = sorted(
    ".".join(("facepoints", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
)


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The facepoints modules an `from X import a, b` names (a may be a submodule)."""
    if node.level:
        base = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    names = [f"{target}.{a.name}" for a in node.names]
    return [target] + [n for n in names if n in MODULES]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (top level or in functions; not under TYPE_CHECKING)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(("facepoints", *parts))
        name = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        deps = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                deps |= {d for d in _resolve(module, node) if d in MODULES}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in MODULES}
        graph[name] = deps - {name, "facepoints"}
    return graph


def test_no_import_cycles():
    graph, seen, stack, cycles = import_graph(), set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m) :] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_each_module_imports_alone():
    """`import facepoints.<module>` works on its own: in a fresh interpreter, each module is imported with
    every facepoints module of the previous one forgotten (third-party libraries stay loaded: speed only)."""
    code = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for m in [m for m in sys.modules if m == "facepoints" or m.startswith("facepoints.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code, *MODULES], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]


def test_import_facepoints_is_light():
    """The package's public names load on first use: `import facepoints` (and the CLI's parser) need no torch."""
    code = "import sys, facepoints, facepoints.cli; facepoints.cli.build_parser(); print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    assert (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "False"
    )


def test_function_level_imports_say_why():
    """An import inside a function is for an optional or slow module, and a comment says so (on its line or
    the line above; one comment covers the imports right below it)."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    i = node.lineno - 1
                    while i > 0 and (
                        lines[i - 1].lstrip().startswith(("import ", "from ")) or not lines[i - 1].strip()
                    ):
                        i -= 1  # the top of this block of imports
                    if (
                        "#" not in lines[node.lineno - 1]
                        and not lines[i - 1].lstrip().startswith("#")
                        and "#" not in lines[i]
                    ):
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, unexplained


@pytest.mark.parametrize("folder", ["scripts", "benchmarks"])
def test_scripts_and_benchmarks_use_no_training_helpers_and_no_path_hacks(folder):
    for path in (ROOT / folder).glob("*.py"):
        text = path.read_text()
        assert "sys.path.insert" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module == "facepoints.train":
                # the training entry point itself may be called (benchmarks/architectures.py trains candidates)
                assert [a.name for a in node.names] == ["train"], f"{path.name} imports helpers from facepoints.train"


def test_benchmarks_import_only_common():
    """A benchmark imports from benchmarks/common.py (what they share) and from facepoints, never from another
    benchmark, at module or function level: each script can be read, run, changed or deleted on its own.
    As an import-linter contract: the modules of benchmarks/ other than common are independent."""
    folder = ROOT / "benchmarks"
    scripts = {p.stem for p in folder.glob("*.py")} - {"common"}
    crossing = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            crossing += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in scripts]
    assert not crossing, crossing


def test_fast_help_lists_agree_with_the_registries():
    from facepoints.config import ARCHITECTURES, DEFAULT_DETECTOR, DETECTOR_NAMES
    from facepoints.detectors import DETECTORS
    from facepoints.models import MODELS

    assert ARCHITECTURES == tuple(MODELS) and DETECTOR_NAMES == tuple(DETECTORS) and DEFAULT_DETECTOR in DETECTORS


def test_api_page_documents_each_public_name_with_an_example():
    """docs/api.md (the README's API section links it) gives each public name a paragraph and a Python example."""
    assert "(docs/api.md)" in (ROOT / "README.md").read_text()
    readme = (ROOT / "docs" / "api.md").read_text()
    for name in ["Landmarker", "LandmarkerOptions", "LandmarkResult", "Face", "ModelSpec", "detect_for_video"]:
        at = readme.find(f"**`{name}")
        assert at >= 0, name
        assert "```python" in readme[at : readme.find("**`", at + 3) if readme.find("**`", at + 3) > 0 else None], name
    import facepoints

    for name in ["Landmarker", "LandmarkerOptions", "LandmarkResult", "Face", "ModelSpec", "Pose", "VideoOptions"]:
        assert getattr(facepoints, name).__name__ == name


def test_benchmark_stamps_are_checked_against_the_shipped_weights():
    """`python benchmarks/common.py --check` (in CI) names a section whose figures came from weights that no
    longer ship: a stamp's sha256 that the file does not have, or a file that is gone."""
    import importlib.util

    from facepoints.model_files import PACKAGE_WEIGHTS, sha256_file

    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    real = sha256_file(PACKAGE_WEIGHTS / "fast.pt")[:16]

    def section(name, stamp):
        return f"<!-- {name}:start -->\nfigures\n\n_Written by x. Weights: {stamp}._\n<!-- {name}:end -->\n"

    good = section("a", f"`fast` = fast.pt sha256 {real}…")
    stale = section("b", "`fast` = fast.pt sha256 0123456789abcdef…")
    gone = section("c", "`old` = old.pt sha256 0123456789abcdef…")
    assert common.stale_stamps(good) == []
    problems = common.stale_stamps(good + stale + gone)
    assert len(problems) == 2 and "[b]" in problems[0] and real in problems[0] and "no such file" in problems[1]
    assert common.stale_stamps((ROOT / "BENCHMARKS.md").read_text()) == []  # what ships now matches its figures
    # docs/experiments.md records how the models were chosen: there an earlier version (MODELS.json "earlier") passes
    earlier = common.earlier_versions().get("fast.pt", [])
    if earlier:
        old = section("d", f"`fast` = fast.pt sha256 {earlier[0][:16]}…")
        assert len(common.stale_stamps(old)) == 1 and common.stale_stamps(old, earlier=True) == []
        assert len(common.stale_stamps(old + stale, earlier=True)) == 1


def test_benchmark_reports_keep_their_format_and_the_summary_follows_the_sections():
    """`common.py --check` holds BENCHMARKS.md to lines of at most 200 characters and to a summary rebuilt from its
    sections; the prose wrapping leaves tables and Markdown structure alone and is stable under a rerun."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    assert common.check() == []
    for path in common.REPORTS:  # every section is in the format write_section gives it
        assert common.reflow(path.read_text()) == path.read_text(), path.name

    long = " ".join(f"w{i}" for i in range(80))
    text = f"## h\n\n{long} - 1. # x\n\n- {long}\n\n| {long} |\n|---|\n"
    wrapped = common.wrap_prose(text, width=40)
    assert wrapped == common.wrap_prose(wrapped, width=40) and f"| {long} |" in wrapped
    lines = wrapped.split("\n")
    assert not any(line.startswith(("-", "1.", "#")) for line in lines[3:] if not line.startswith(("- w0", "## h")))
    item = lines.index(next(line for line in lines if line.startswith("- w0")))
    assert lines[item + 1].startswith("  w") and max(len(line) for line in lines if line[:1] != "|") <= 40

    table = "| method | boxes | NME mean |\n|---|---|---|\n| m | b | 3.5% |\n| m | c | 4.0% |\n"
    assert common.cell(table, {"method": "m", "boxes": "c"}, "NME mean") == "4.0%"
    assert common.cell(table, {"method": "m*"}, "NME mean") == "3.5%"
    assert common.cell(table, {"method": "n"}, "NME mean") is None
