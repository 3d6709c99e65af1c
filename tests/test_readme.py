"""The README's commands work as written: CI runs its test block, the demo line parses and passes the
demo's checks, and the pack installs so that the library example runs from any folder."""

import importlib.metadata
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_block(name: str, readme: str | None = None) -> str:
    """The fenced block after ``<!-- command: name -->`` (bash) or the first python block (name "python")."""
    text = readme if readme is not None else (ROOT / "README.md").read_text()
    if name == "python":
        return re.findall(r"```python\n(.*?)```", text, re.S)[0]
    match = re.search(r"<!-- command: " + name + r" -->\s*```bash\n(.*?)```", text, re.S)
    assert match, f"README.md has no bash block after <!-- command: {name} -->"
    return match.group(1).strip()


def steps(command: str) -> list[list[str]]:
    """``a && b`` -> ``[shlex.split(a), shlex.split(b)]``."""
    return [shlex.split(part) for part in command.split("&&")]


def test_ci_runs_the_readme_test_block_which_installs_the_pack_and_runs_pytest():
    printed = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-test-command"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    assert printed == readme_block("test")
    install, run, js = steps(printed)
    assert install == ["pip", "install", "-e", ".[test]"]  # this project, with pytest, keeping the installed torch
    assert run[:3] == ["python", "-m", "pytest"]
    assert "node --test web/tests/" in " ".join(js) and "skipped" in " ".join(js)  # the JS unit tests, skipped without node


def _ci_copy(tmp_path, test_block: str, test_file: str) -> pathlib.Path:
    """A repository holding only .ci/run, a README whose test block is ``test_block``, and one test file."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(f"# x\n\n<!-- command: test -->\n```bash\n{test_block}\n```\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_x.py").write_text(test_file)
    return tmp_path


@pytest.mark.parametrize("test_file, rc", [("def test_ok():\n    assert True\n", 0),
                                           ("def test_bad():\n    assert False\n", 1),
                                           ("# no tests here\n", 1)])  # pytest's 5 (nothing collected) fails CI too
def test_ci_exit_code_is_the_readme_blocks_and_nothing_collected_fails(tmp_path, test_file, rc):
    repo = _ci_copy(tmp_path, "python -m pytest -q -p no:cacheprovider t", test_file)
    done = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == rc, done.stdout + done.stderr
    assert "+ python -m pytest -q -p no:cacheprovider t" in done.stdout


def test_readme_demo_line_installs_the_pack_without_pinning_torch_and_its_options_pass_the_demo_checks(tmp_path):
    from toyworld.demo import build_parser, check_args

    install, demo = steps(readme_block("demo"))
    assert install == ["pip", "install", "-e", "."]  # keeps an installed torch (ComfyUI's); no torch==... pin
    assert demo[:3] == ["python", "-m", "toyworld.demo"]
    args = build_parser().parse_args(demo[3:])
    assert args.num_frames == 256 and args.out == pathlib.Path("out/demo")
    args.out = tmp_path / "demo"  # the same checks, without creating out/demo in the repository
    job = check_args(args)
    assert job.num_frames == 256


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The pack built and installed (no dependencies) into a fresh folder, as pip installs it from the README."""
    source = tmp_path_factory.mktemp("source")  # a copy, so the build leaves nothing in the repository
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("miga_core", "toyworld"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    try:
        setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        setuptools_major = 0
    if setuptools_major >= 68:  # pyproject's build requirement is installed: build with it, no download
        cmd.insert(4, "--no-build-isolation")
    subprocess.run(cmd, check=True, timeout=300, capture_output=True, cwd=tmp_path_factory.mktemp("cwd"))
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    return target, elsewhere, env


def test_the_installed_pack_ships_the_toy_model_and_the_demo_runs_from_another_folder(installed):
    target, elsewhere, env = installed
    code = "import miga_core, toyworld.demo as d; print(miga_core.__file__); print(d.WEIGHTS, d.WEIGHTS.is_file())"
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split("\n")
    assert out[0].startswith(str(target)) and out[1].startswith(str(target)) and out[1].endswith("True")
    helptext = subprocess.run([sys.executable, "-m", "toyworld.demo", "--help"], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=120, check=True).stdout
    assert "--num-frames" in helptext


def test_readme_library_example_runs_from_another_folder_after_install(installed):
    """The README's Python block, with the 60x104 latent shrunk to 4x4 so it runs in seconds."""
    target, elsewhere, env = installed
    code = readme_block("python")
    assert code.count("latent_shape=(1, 16, 60, 104)") == 2
    code = code.replace("latent_shape=(1, 16, 60, 104)", "latent_shape=(1, 2, 4, 4)")
    code += "\nimport miga_core\nassert miga_core.__file__.startswith(%r), miga_core.__file__\nprint('video', tuple(video.shape))\n" % str(target)
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "video (1, 2, 121, 4, 4)"
