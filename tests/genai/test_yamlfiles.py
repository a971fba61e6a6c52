"""`genai.yamlfiles`: libyaml's safe loader where PyYAML has it, reading every YAML file of the
repository as the pure-Python safe loader does, and as safe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenbook.genai.yamlfiles import SAFE_LOADER, load_yaml, load_yaml_all, read_yaml

REPO = Path(__file__).resolve().parents[2]
_SKIP = {".venv", ".venv-latest", ".git", "node_modules"}


def _yaml_files() -> list[Path]:
    """Every YAML file of the repository (not of its virtual environments)."""
    folders = [p for p in REPO.iterdir() if p.is_dir() and p.name not in _SKIP]
    found = [p for folder in folders for p in folder.rglob("*.y*ml")] + list(REPO.glob("*.y*ml"))
    return sorted(p for p in found if p.suffix in (".yaml", ".yml"))


def test_the_locked_pyyaml_has_libyaml() -> None:
    assert yaml.__with_libyaml__
    assert SAFE_LOADER is yaml.CSafeLoader


def test_every_yaml_file_of_the_repository_reads_as_with_the_pure_python_loader() -> None:
    """The same documents, or both refuse the file (the test data holds malformed YAML on purpose)."""
    paths = _yaml_files()
    assert len(paths) >= 20
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            expected = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            with pytest.raises(yaml.YAMLError):
                read_yaml(path)
            continue
        assert load_yaml_all(text) == expected, path
        if len(expected) == 1:
            assert read_yaml(path) == expected[0], path


def test_values_read_as_the_safe_loader_reads_them() -> None:
    text = "a: 1\nb: 0.5\nc: 2026-12-06\nd: [x, 'y', null]\ne: yes\nf: '007'\ng: 1e3\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("") is None
    assert load_yaml_all("a: 1\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: b: c\n", "!!python/object/apply:os.system ['true']\n"])
def test_malformed_or_unsafe_yaml_is_refused(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml(text)
