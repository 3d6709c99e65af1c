"""The README's commands are the ones CI and users run."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme
    assert re.search(r"^python3 -m pytest -q$", ci, re.M)


def test_ci_fails_when_pytest_collects_no_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$rc" -eq 5' in ci and "exit 1" in ci


def test_readme_main_job_command_names_an_existing_module():
    readme = (ROOT / "README.md").read_text()
    assert "python -m miga_core.demo" in readme
    assert (ROOT / "miga_core" / "demo.py").exists()
