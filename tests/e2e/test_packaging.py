"""certbound as another project adopts it (SPEC §2, issue 10 "Done means"): a wheel built from the
repository installs `certbound` with py.typed and no top-level `server`; in a fresh virtualenv
holding only that wheel and pytest, a project with its own `server` package passes under `pytest`
and `python -m pytest`, without and then with the `testing` extra, the README's harness examples
included (strict and auto mode).

Slow by nature (a wheel build and a virtualenv): one wheel and one virtualenv per module, pip's cache
and the machine's package index for the dependencies, no pip inside the virtualenv (the suite's pip
installs into it with --python).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.readme import readme_code_blocks

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
#: What a wheel build needs from the repository (setup.py maps certbound -> server/).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "server")

PROJECT_APP = 'def create_app():\n    return "the project\'s own app"\n'
PROJECT_TEST = textwrap.dedent(
    """
    import pytest

    import certbound
    from server.app import create_app


    def test_the_projects_server_package_is_its_own():
        assert create_app() == "the project's own app"


    def test_certbound_comes_from_the_wheel_not_from_a_server_module():
        assert "site-packages" in certbound.__file__
        with pytest.raises(ModuleNotFoundError):
            import server.pytest_plugin  # noqa: F401  the old name is not installed
    """
)


def _run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=540
    )


def _ok(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = _run(*command, cwd=cwd, env=env)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _summary(out: str) -> dict[str, int]:
    """pytest's last line as counts: {"passed": 3}."""
    return {kind: int(count) for count, kind in re.findall(r"(\d+) (\w+)", out.strip().splitlines()[-1])}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the build writes build/ and egg-info beside them)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _ok(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, source, cwd=source)
    (built,) = out.glob("certbound-*.whl")
    return built


def test_the_wheel_installs_certbound_typed_and_no_server(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"certbound"}
    assert "certbound/py.typed" in names
    assert "certbound/pytest_plugin.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"certbound.pytest_plugin = certbound.pytest_plugin" in entry_points


def _environment(venv: Path) -> dict[str, str]:
    """The virtualenv first on PATH; nothing of this suite's interpreter set-up or CERTBOUND_*."""
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "PYTEST", "CERTBOUND_", "VIRTUAL_ENV", "COV_"))
    }
    return {**keep, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _project(root: Path) -> Path:
    """A web project of the common shape: its own `server` package, tests beside it, a root
    conftest.py (so plain `pytest` finds the project's modules)."""
    (root / "server").mkdir(parents=True)
    (root / "server" / "__init__.py").write_text("")
    (root / "server" / "app.py").write_text(PROJECT_APP)
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(PROJECT_TEST)
    (root / "conftest.py").write_text("")
    return root


def test_a_project_with_its_own_server_package_passes_with_and_without_the_testing_extra(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _ok(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    pip = (
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--disable-pip-version-check",
    )
    env = _environment(venv)
    project = _project(tmp_path / "project")
    async_example, sync_example = readme_code_blocks("## Testing with certbound", "python")
    (project / "tests" / "test_readme_sync.py").write_text(sync_example)

    # certbound and pytest only: the plugin loads (by its entry point) and needs no pytest-asyncio.
    _ok(*pip, wheel, "pytest", cwd=tmp_path)
    assert _run(python, "-c", "import pytest_asyncio", cwd=tmp_path, env=env).returncode == 1
    assert _run(python, "-c", "import server", cwd=tmp_path, env=env).returncode == 1  # none installed
    for command in (("pytest",), (python, "-m", "pytest")):
        out = _ok(*command, "-p", "no:cacheprovider", cwd=project, env=env)
        assert _summary(out) == {"passed": 3}, out
    # The twin: without the plugin the harness fixtures do not exist.
    off = _run("pytest", "-p", "no:cacheprovider", "-p", "no:certbound.pytest_plugin", cwd=project, env=env)
    assert off.returncode == 1
    assert "fixture 'certbound_client_factory' not found" in off.stdout

    # With the testing extra: the README's async example too, in strict (the default) and auto mode.
    _ok(*pip, f"{wheel}[testing]", cwd=tmp_path)
    (project / "tests" / "test_readme_async.py").write_text(async_example)
    strict = _ok("pytest", "-p", "no:cacheprovider", cwd=project, env=env)
    assert _summary(strict) == {"passed": 4}, strict
    auto = _ok(
        python, "-m", "pytest", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", cwd=project, env=env
    )
    assert _summary(auto) == {"passed": 4}, auto
