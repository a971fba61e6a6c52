"""Every public callable states its contract: a docstring on each public function, class and method."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import pytest

PACKAGES = ("tokenbook.genai", "tokenbook.processor", "tokenbook.collector", "tokenbook.cli")


def _modules() -> Iterator[str]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                yield info.name


def _public(module_name: str) -> Iterator[tuple[str, object]]:
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name, None)
        if getattr(obj, "__module__", None) != module_name:
            continue  # re-exported: checked where it is defined
        if inspect.isfunction(obj):
            yield f"{module_name}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{module_name}.{name}", obj
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if getattr(member, "__name__", "") == "<lambda>":
                    continue  # a default value, not an API
                if inspect.isfunction(member) or isinstance(member, property):
                    yield f"{module_name}.{name}.{attr}", member


def _undocumented() -> list[str]:
    missing = []
    for module_name in _modules():
        for qualname, obj in _public(module_name):
            doc = (
                obj.fget.__doc__ if isinstance(obj, property) and obj.fget else getattr(obj, "__doc__", None)
            )
            if inspect.isclass(obj) and issubclass(obj, tuple) and doc and doc.startswith(obj.__name__ + "("):
                doc = None  # a named tuple's generated docstring says nothing
            if not (doc and doc.strip()):
                missing.append(qualname)
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_callable_has_a_docstring(package: str) -> None:
    missing = [name for name in _undocumented() if name.startswith(package + ".")]
    assert not missing, f"{len(missing)} public callables without a docstring:\n" + "\n".join(missing)
