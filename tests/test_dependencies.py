"""The dependency direction of the domain apps (locations <- chargers <- bookings), interface
apps (ocpi, api) imported by none of them, and the interfaces' shared plumbing (partners)
importing neither: every import in every module, function bodies included."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAY_NOT_IMPORT = {
    "locations": {"chargers", "bookings", "ocpi", "api"},
    "chargers": {"bookings", "ocpi", "api"},
    "bookings": {"ocpi", "api"},
    "partners": {"locations", "chargers", "bookings", "ocpi", "api"},
}


def _imported_apps(path: Path) -> set[str]:
    apps = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            apps.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            apps.add(node.module.split(".")[0])
    return apps


@pytest.mark.parametrize("app", sorted(MAY_NOT_IMPORT))
def test_domain_app_imports_only_what_it_depends_on(app):
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_apps(path) & MAY_NOT_IMPORT[app])
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {module: apps for module, apps in wrong.items() if apps} == {}
