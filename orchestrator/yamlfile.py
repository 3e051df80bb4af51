"""Reading YAML the way a validator needs it: data, the line of every value, and no
silently dropped duplicate keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import FlowError, Problem


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _lines(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else None
            out[(*path, k)] = key.start_mark.line + 1
            _lines(value, (*path, k), out)
            out[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


class YamlDoc:
    def __init__(self, source: str, data: Any, lines: dict[tuple, int]) -> None:
        self.source = source
        self.data = data
        self.lines = lines

    def line(self, path: tuple) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return None

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.source, format_path(path), message, self.line(path))


def format_path(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def read_yaml(path: Path, source: str | None = None) -> YamlDoc:
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError([Problem(source, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(source, "", f"cannot read the file: {exc}")]) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> YamlDoc:
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise FlowError([Problem(source, "", f"invalid YAML: {exc.problem or exc}", line)]) from None
    except yaml.YAMLError as exc:
        raise FlowError([Problem(source, "", f"invalid YAML: {exc}")]) from None
    lines: dict[tuple, int] = {}
    if root is not None:
        _lines(root, (), lines)
    return YamlDoc(source, data, lines)
