"""Reading YAML: every YAML file tokenbook reads (config, price overrides, price books, exchange
rates) is parsed here, with PyYAML's safe loader.

PyYAML's wheels carry the libyaml bindings (``yaml.CSafeLoader``): the same safe loader, about ten
times faster than the pure-Python one, which is used where the bindings are absent (a PyYAML built
without libyaml). Both build the same plain objects (dicts, lists, strings, numbers, dates) and raise
`yaml.YAMLError` on malformed input; only the text of that error differs (libyaml's names the line
and column but does not quote the line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["SAFE_LOADER", "load_yaml", "load_yaml_all", "read_yaml"]

#: The safe loader: libyaml's when PyYAML has it, else the pure-Python one.
SAFE_LOADER: Final = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


def load_yaml(text: str) -> Any:
    """The one YAML document in `text`, as `yaml.safe_load` reads it; raises `yaml.YAMLError`."""
    return yaml.load(text, Loader=SAFE_LOADER)


def load_yaml_all(text: str) -> list[Any]:
    """Every YAML document in `text` (``---`` separated), as `yaml.safe_load_all` reads them."""
    return list(yaml.load_all(text, Loader=SAFE_LOADER))


def read_yaml(path: str | Path) -> Any:
    """The YAML document in the UTF-8 file `path`; raises `OSError` or `yaml.YAMLError`."""
    return load_yaml(Path(path).read_text(encoding="utf-8"))
