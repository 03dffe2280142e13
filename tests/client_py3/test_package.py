"""`client/` is a package of its own: `pip install ./client` gives the `tutum` module and command, its dependencies
are the three it declares, and it shares no code with the server (STYLE.md rule 10)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

from tests.client_py3.conftest import CLIENT_DIR

#: What the client may import besides the standard library and itself.
DEPENDENCIES = {"httpx", "websockets", "rich"}


def _imported_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((CLIENT_DIR / "tutum").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(CLIENT_DIR)))
    return found


def test_the_client_imports_only_the_standard_library_its_dependencies_and_itself():
    imported = _imported_modules()
    foreign = {
        name: files
        for name, files in imported.items()
        if name not in sys.stdlib_module_names and name not in DEPENDENCIES | {"tutum"}
    }
    assert foreign == {}  # no django, rest_framework, nodeclusters, tutum_api, providers, tests
    assert set(imported) >= DEPENDENCIES


def test_pyproject_declares_the_command_and_compatible_ranges_of_its_dependencies():
    project = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"tutum": "tutum.cli:main"}
    assert project["requires-python"] == ">=3.11"
    declared = {requirement.split(">")[0].split("=")[0].strip(): requirement for requirement in project["dependencies"]}
    assert set(declared) == DEPENDENCIES
    for requirement in declared.values():
        assert ">=" in requirement and ",<" in requirement, requirement  # a floor and a ceiling


def test_pip_install_gives_the_module_and_the_command(installed_client):
    assert (installed_client / "tutum" / "py.typed").exists()
    assert (installed_client / "tutum" / "cli" / "__init__.py").exists()
    script = installed_client / "bin" / "tutum"
    env = {"PYTHONPATH": str(installed_client), "PATH": "/usr/bin:/bin", "HOME": str(installed_client)}

    version = subprocess.run([sys.executable, str(script), "--version"], env=env, capture_output=True, text=True)
    assert (version.returncode, version.stdout.strip()) == (0, "tutum 0.22.0")
    as_module = subprocess.run(
        [sys.executable, "-m", "tutum", "nodecluster", "--help"], env=env, capture_output=True, text=True
    )
    assert as_module.returncode == 0
    for command in ("create", "inspect", "list", "rm", "scale", "upgrade", "provider", "region", "nodetype", "az"):
        assert command in as_module.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import tutum; print(tutum.__file__, tutum.__version__)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.split() == [str(installed_client / "tutum" / "__init__.py"), "0.22.0"]
