"""miga_core is the algorithm layer: it never imports the host and touches no GPU at import (docs/style.md)."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_miga_core_imports_with_comfy_blocked_and_initialises_no_cuda():
    code = (
        "import sys\n"
        "for name in ('comfy', 'comfy_api', 'folder_paths', 'nodes', 'server'):\n"
        "    sys.modules[name] = None\n"
        "import torch\n"
        "import miga_core\n"
        "assert not torch.cuda.is_initialized(), 'miga_core initialised CUDA at import'\n"
        "print('ok', len(miga_core.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_no_module_of_miga_core_names_a_host_package():
    pattern = re.compile(r"^\s*(import|from)\s+(comfy|comfy_api|folder_paths|nodes|server)\b", re.M)
    offenders = [p.name for p in (ROOT / "miga_core").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_only_the_host_adapter_imports_comfy_internals():
    """nodes/host.py is the one module that imports comfy.* (docs/style.md); node modules use comfy_api only."""
    internals = re.compile(r"^\s*(import|from)\s+(comfy|latent_preview|folder_paths|server|nodes|execution)\b", re.M)
    importers = sorted(p.name for p in (ROOT / "nodes").glob("*.py") if internals.search(p.read_text()))
    assert importers == ["host.py"]
    assert not internals.search((ROOT / "__init__.py").read_text())


def _internal_imports(package: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in its text (function-level imports included)."""
    names = {p.stem for p in package.glob("*.py")}
    pattern = re.compile(r"^\s*from\s+\.(\w*)\s+import\s+([\w, ()\n]+)", re.M)
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        deps = set()
        for module, imported in pattern.findall(path.read_text()):
            if module:
                deps.add(module)
            else:  # `from . import a, b`
                deps |= {n.strip() for n in imported.replace("(", "").replace(")", "").split(",")} & names
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_module_of_miga_core_imports_a_module_that_imports_it_back():
    graph = _internal_imports(ROOT / "miga_core")
    assert graph["stages"] and graph["plan"]  # the scan sees relative imports

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for dep in graph.get(start, ()):
            if dep == target or (dep not in seen and (seen.add(dep) or reaches(dep, target, seen))):
                return True
        return False

    cycles = sorted(m for m in graph if m != "__init__" and reaches(m, m, set()))
    assert cycles == []
