"""Reading YAML the way a validator needs it: data, the line of every value, and no
silently dropped duplicate keys.

A flow file is refused as soon as it has more values than any flow needs: PyYAML's parser
is pure Python, about 50 us a value, so 256 KiB of `[0,0,0,…]` (128,000 values) took 15 s
of CPU to read, twice over (once to check its shape, once to load it), before anything
refused it. The document is read once, counted as it is read, and loaded from what was read.

A document is refused before anything walks it when it nests too deeply (PyYAML and the
validators recurse: a RecursionError escaped as a crash) or when its aliases expand to too
many values: ten lines of `&a [*b, *b, ...]` anchors (a "billion laughs") expand to tens of
millions of values, and validating them took minutes of CPU. Recursive aliases are refused
too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import FlowError, Problem

# A flow file is a few kilobytes; past this, it is refused before it is read or parsed.
MAX_BYTES = 256 * 1024
# Values (scalars, keys, lists, mappings) in a flow file, aliases expanded: the largest flow
# the other limits allow (200 steps, 50 agents with their rules) has a few thousand.
MAX_VALUES = 20_000
MAX_DEPTH = 50  # lists and mappings inside each other


class _TooManyValues(yaml.YAMLError):
    pass


class _Loader(yaml.SafeLoader):
    max_values: int | None = None
    values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.values += 1
        if self.max_values is not None and self.values > self.max_values:
            raise _TooManyValues(f"the file has more than {self.max_values:,} values (scalars, "
                                 "keys, lists and mappings); a flow file may have at most "
                                 f"{self.max_values:,}: split it into several flows")
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {type(key).__name__}",
                key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


# The org file, which has no limit on its values, is composed by libyaml where PyYAML has it:
# PyYAML's pure-Python parser took 20 ms of the 4 KB org file of bench/flows, most of what
# `baton status` spends besides starting up. A document libyaml refuses is read again by the
# pure-Python parser, so the problem is reported in the same words wherever libyaml is.
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        max_values: int | None = None

    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


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


def read_yaml(path: Path, source: str | None = None, max_bytes: int | None = MAX_BYTES,
              max_values: int | None = MAX_VALUES) -> YamlDoc:
    """A flow file (at most `max_bytes`, checked before it is read, and `max_values`; None:
    any size, for the org file, which an operator writes and a large company's may be big)."""
    source = source or str(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise FlowError([Problem(source, "", _too_big(size, max_bytes))])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError([Problem(source, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(source, "", f"cannot read the file: {exc}")]) from None
    return parse_yaml(text, source, max_bytes, max_values)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _shape_problem(root: yaml.Node, max_values: int | None) -> str | None:
    """What makes the document too big or too deep to walk, counting every alias as the
    value it stands for (without walking it more than once: that is what a bomb exploits)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        key = id(node)
        if kids is not None:  # its children are done
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > MAX_DEPTH:
                return f"lists and mappings are nested more than {MAX_DEPTH} deep"
            continue
        if key in size:
            continue
        kids = _children(node)
        if not kids:
            size[key], depth[key] = 1, 0
            continue
        on_path.add(key)
        stack.append((node, kids))
        for kid in kids:
            if id(kid) in on_path:
                return f"an alias refers to a value that contains it (line {kid.start_mark.line + 1})"
            if id(kid) not in size:
                stack.append((kid, None))
    expanded, written = size[id(root)], len(size)
    if max_values is not None and expanded > max_values:
        return (f"its aliases (*name) expand {written:,} values into {expanded:,}; a flow file "
                f"may have at most {max_values:,}, aliases expanded")
    return None


def _too_big(size: int, limit: int) -> str:
    return (f"the file is {size:,} bytes; a flow file may have at most {limit:,} "
            "(split it into several flows)")


def parse_yaml(text: str, source: str, max_bytes: int | None = MAX_BYTES,
               max_values: int | None = MAX_VALUES) -> YamlDoc:
    if max_bytes is not None and len(text) > max_bytes // 4:  # 4: the most bytes a character takes
        size = len(text.encode("utf-8"))
        if size > max_bytes:
            raise FlowError([Problem(source, "", _too_big(size, max_bytes))])
    if max_values is None and _FastLoader is not None:
        try:
            return _parse(text, source, _FastLoader, max_values)
        except FlowError:
            pass  # said below in the words of the parser flow files are read with
    return _parse(text, source, _Loader, max_values)


def _parse(text: str, source: str, kind: type[Any], max_values: int | None) -> YamlDoc:
    loader: Any = None
    try:
        loader = kind(text)
        loader.max_values = max_values
        root = loader.get_single_node()
        problem = _shape_problem(root, max_values) if root is not None else None
        if problem is not None:
            raise FlowError([Problem(source, "", f"invalid YAML: {problem}")])
        data = loader.construct_document(root) if root is not None else None
    except _TooManyValues as exc:
        raise FlowError([Problem(source, "", str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise FlowError([Problem(source, "", f"invalid YAML: {exc.problem or exc}", line)]) from None
    except yaml.YAMLError as exc:
        raise FlowError([Problem(source, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise FlowError([Problem(source, "", "invalid YAML: lists and mappings are nested more "
                                             f"than {MAX_DEPTH} deep")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[tuple, int] = {}
    if root is not None:
        _lines(root, (), lines)
    return YamlDoc(source, data, lines)
