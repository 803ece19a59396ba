"""The project's layout rules, checked on the source so they stay true:

- dialect code (OME, WCS v2, WCS v3) lives in its packages, which call the domain apps; no domain
  app imports a dialect package (the admin's console, apps.dashboard, is a UI layer and may use a
  dialect's validation, as the API views do), and no domain app has an ``ome.py`` or ``wcs.py``;
- every app has the same file set: ``apps.py``; ``admin.py`` and ``migrations/`` where it has models;
  its choices (state names) in ``choices.py``, never in ``models.py``; a ``tests/<app>/`` folder with
  at least one test module;
- the top-level ``templates/`` folder holds project-wide templates only (the admin's ``index.html``
  override); an app's templates stay in the app.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from django.apps import apps as registry
from django.db import models

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "apps"
DIALECTS = ("api_ome", "api_wcs", "api_wcs_v3")
# May import dialect packages: the dialects themselves, and the admin's console (a UI layer).
DIALECT_USERS = (*DIALECTS, "dashboard")
APP_NAMES = sorted(path.parent.name for path in APPS.glob("*/apps.py"))


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count), relative ones resolved."""
    package = _module_of(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_of(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_dialect(module: str) -> bool:
    return any(module == f"apps.{name}" or module.startswith(f"apps.{name}.") for name in DIALECTS)


def dialect_imports_of_domain_apps() -> list[str]:
    wrong = []
    for path in sorted(APPS.rglob("*.py")):
        app = path.relative_to(APPS).parts[0]
        if app in DIALECT_USERS or len(path.relative_to(APPS).parts) == 1:
            continue
        wrong += [
            f"{path.relative_to(ROOT)} imports {module}" for module in _imported_modules(path) if _is_dialect(module)
        ]
    return sorted(set(wrong))


def test_no_domain_app_imports_a_dialect_package():
    assert dialect_imports_of_domain_apps() == []


def test_the_check_sees_a_dialect_import_inside_a_function(tmp_path, monkeypatch):
    # The rule's own check must be able to fail: a late import in a domain app is found.
    fake_root = tmp_path
    (fake_root / "apps" / "recording").mkdir(parents=True)
    (fake_root / "apps" / "recording" / "tasks.py").write_text(
        "def f():\n    from apps.api_ome.serializers.recording import record_to_ome\n    from ..api_wcs import errors\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    monkeypatch.setattr(sys.modules[__name__], "APPS", fake_root / "apps")

    assert dialect_imports_of_domain_apps() == [
        "apps/recording/tasks.py imports apps.api_ome.serializers.recording",
        "apps/recording/tasks.py imports apps.api_ome.serializers.recording.record_to_ome",
        "apps/recording/tasks.py imports apps.api_wcs",
        "apps/recording/tasks.py imports apps.api_wcs.errors",
    ]


@pytest.mark.parametrize("app", [name for name in APP_NAMES if name not in DIALECTS])
def test_a_domain_app_has_no_dialect_module(app):
    assert sorted(p.name for p in (APPS / app).rglob("*.py") if p.name in ("ome.py", "wcs.py")) == []


def test_every_app_with_models_has_admin_and_migrations():
    with_models = [
        app for app in APP_NAMES if any(not m._meta.abstract for m in registry.get_app_config(app).get_models())
    ]
    assert "streams" in with_models  # the check sees the apps' models
    missing = [
        f"apps/{app}/{name}"
        for app in with_models
        for name in ("models.py", "admin.py", "migrations/__init__.py")
        if not (APPS / app / name).is_file()
    ]
    assert missing == []


def _choices_classes() -> list[type]:
    found, todo = [], [models.Choices]
    while todo:
        for subclass in todo.pop().__subclasses__():
            todo.append(subclass)
            if subclass.__module__.startswith("apps."):
                found.append(subclass)
    return found


def test_every_choices_class_lives_in_a_choices_module():
    assert _choices_classes(), "the apps' choices were not found: the check would pass for nothing"
    wrong = [f"{c.__module__}.{c.__qualname__}" for c in _choices_classes() if not c.__module__.endswith(".choices")]
    assert wrong == []


def _inherited_fields(model: type[models.Model]) -> set[str]:
    return {
        field.name
        for base in model.__mro__[1:]
        if issubclass(base, models.Model) and base is not models.Model and base._meta.abstract
        for field in base._meta.fields
    }


@pytest.mark.parametrize("app", APP_NAMES)
def test_an_app_whose_models_have_states_has_choices(app):
    state_fields = [
        f"{model.__name__}.{field.name}"
        for model in registry.get_app_config(app).get_models()
        for field in model._meta.get_fields()
        if getattr(field, "choices", None)
        and ("state" in field.name or "status" in field.name)
        and field.name not in _inherited_fields(model)  # declared here, not on another app's abstract model
    ]
    if state_fields:
        assert (APPS / app / "choices.py").is_file(), f"{app} has states ({', '.join(state_fields)}) but no choices.py"


@pytest.mark.parametrize("app", APP_NAMES)
def test_every_app_has_a_test_folder_with_tests(app):
    folder = ROOT / "tests" / app
    assert (folder / "__init__.py").is_file()
    assert list(folder.glob("test_*.py")), f"tests/{app} has no test module"


def test_the_top_level_templates_are_project_wide_only():
    templates = ROOT / "templates"
    assert (templates / "admin" / "index.html").is_file()
    app_folders = [
        str(folder.relative_to(ROOT))
        for folder in [*templates.iterdir(), *(templates / "admin").iterdir()]
        if folder.is_dir() and folder.name in APP_NAMES
    ]
    assert app_folders == []
