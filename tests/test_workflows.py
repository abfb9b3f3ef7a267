"""The GitHub Actions workflow that tests the book and publishes it on GitHub Pages.

actionlint checks every workflow (syntax, expressions, action inputs, and the ``run:`` scripts
with shellcheck when it is installed); the rest checks what the workflow must do: install from
requirements.txt, run the README's test command, and deploy the built book with the official
Pages actions and only the permissions that needs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
BOOK = ROOT / ".github" / "workflows" / "book.yml"
MAIN_ONLY = "github.event_name != 'pull_request' && github.ref == 'refs/heads/main'"


def tool(name: str) -> str | None:
    """``name`` from this Python's environment (pip's dev extra), else from PATH."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.is_file() else shutil.which(name)


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    binary = tool("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]' installs it)")
    shellcheck = tool("shellcheck")
    return [binary, "-no-color", *(["-shellcheck", shellcheck] if shellcheck else [])]


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_actionlint_passes_every_workflow(actionlint) -> None:
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = run([*actionlint, *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_mistakes(actionlint, tmp_path) -> None:
    """The linter really checks: a workflow with an unknown input and a bad expression fails."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          fetch-dept: 0\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    result = run([*actionlint, str(bad)], cwd=tmp_path)
    assert result.returncode != 0
    assert "fetch-dept" in result.stdout and "no_such_thing" in result.stdout, result.stdout


# --------------------------------------------------------------------------- what book.yml does


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(BOOK.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict) -> dict[str, dict]:
    """The actions a job uses, by name without version, with their step."""
    return {s["uses"].split("@")[0]: s for s in steps(job) if "uses" in s}


def script(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def test_runs_on_pushes_to_main_and_pull_requests(workflow) -> None:
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert "pull_request" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}


def test_installs_from_requirements_txt_and_runs_the_readme_test_command(workflow) -> None:
    test = workflow["jobs"]["test"]
    text = script(test)
    assert "pip install -r requirements.txt" in text
    assert 'pip install -e ".[dev]"' in text
    # CPU wheels before requirements.txt, whose torch has lower bounds only
    assert text.index("download.pytorch.org/whl/cpu") < text.index("-r requirements.txt")
    assert "FETALFT_PROFILE=smoke pytest" in text
    assert "ruff check ." in text and "ruff format --check ." in text
    checkout = uses(test)["actions/checkout"]
    assert checkout["with"]["fetch-depth"] == 0  # tags and main, for the ref test
    assert "FETALFT_PROFILE=smoke pytest" in (ROOT / "README.md").read_text()


def test_builds_the_book_and_deploys_it_with_the_official_pages_actions(workflow) -> None:
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["deploy"]
    build = next(s for s in steps(test) if "jupyter-book build" in s.get("run", ""))
    assert build["run"].strip() == "jupyter-book build ." and build["if"] == MAIN_ONLY
    upload = uses(test)["actions/upload-pages-artifact"]
    assert upload["with"]["path"] == "_build/html" and upload["if"] == MAIN_ONLY
    assert deploy["if"] == MAIN_ONLY and deploy["needs"] == "test"
    assert {"actions/configure-pages", "actions/deploy-pages"} <= uses(deploy).keys()
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    # the job that runs on pull requests cannot write to Pages
    assert "permissions" not in test


def test_actions_are_pinned_to_a_major_version(workflow) -> None:
    for job in workflow["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                version = step["uses"].partition("@")[2]
                assert version.startswith("v") and version[1:].split(".")[0].isdigit(), step
