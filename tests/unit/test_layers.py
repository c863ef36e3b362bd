"""A domain uses another domain only through what that domain's ``__init__`` exports.

import-linter (``make lint``) keeps the layers; this keeps the doors: ``from sender import
SendBatch`` is allowed in ``streams``, ``from sender.models import SendBatch`` is not, and every
name imported so is in the exporting domain's ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("streams", "targeting", "scheduler", "sender")
USERS = (*DOMAINS, "analysis")  # packages that may use a domain only through its exports


def _cross_imports(domain: str) -> list[tuple[str, int, str, list[str]]]:
    """(file, line, imported module, names) of every import of another domain in ``domain``."""
    found = []
    for path in sorted((ROOT / domain).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [(node.module, [a.name for a in node.names])]
            elif isinstance(node, ast.Import):
                modules = [(a.name, []) for a in node.names]
            for module, names in modules:
                top = module.split(".")[0]
                if top in DOMAINS and top != domain:
                    found.append((str(path.relative_to(ROOT)), node.lineno, module, names))
    return found


@pytest.mark.parametrize("domain", USERS)
def test_other_domains_are_used_through_their_exports(domain: str) -> None:
    wrong = [f"{f}:{line} imports {module}" for f, line, module, _ in _cross_imports(domain)
             if "." in module]
    assert wrong == [], "import the domain's __init__ exports instead"


@pytest.mark.parametrize("domain", USERS)
def test_what_is_imported_is_exported(domain: str) -> None:
    missing = [f"{f}:{line} {module}.{name}" for f, line, module, names in _cross_imports(domain)
               for name in names if name not in importlib.import_module(module).__all__]
    assert missing == []


def test_every_export_exists() -> None:
    for domain in DOMAINS:
        package = importlib.import_module(domain)
        assert all(hasattr(package, name) for name in getattr(package, "__all__", []))
