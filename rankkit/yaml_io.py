"""YAML input within bounds: :func:`load_yaml` (files), :func:`parse_yaml` (text) and :func:`check_structure`.

Every config file and ``--set`` value is read here. Size, nesting depth, alias expansion,
UTF-8 and duplicate keys are checked while reading, so a malformed or hostile file is a
:class:`~rankkit.errors.ConfigError` naming the file (and line) before anything walks,
copies or prints it. :func:`check_structure` applies the same bounds to any
already-parsed value.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankkit.errors import ConfigError

#: bounds of YAML input (:func:`load_yaml`, :func:`parse_yaml`, :func:`check_structure`)
MAX_YAML_BYTES = 10 * 2**20
MAX_NODES = 1_000_000
MAX_DEPTH = 100


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file within bounds; every problem is a :class:`ConfigError` naming the file.

    Refused: a missing path or a folder, more than :data:`MAX_YAML_BYTES`, invalid UTF-8
    (the byte offset and line are named; a leading BOM is fine), a syntax error (file and
    line), a key repeated in one mapping, nesting deeper than :data:`MAX_DEPTH`, and
    aliases that would expand to more than :data:`MAX_NODES` values or refer to
    themselves (see :func:`check_structure`).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_YAML_BYTES // 2**20} MiB; not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (byte {data[exc.start:exc.start + 1]!r} "
                          f"at byte offset {exc.start})") from None
    return parse_yaml(text.removeprefix("\ufeff"), str(path))


def parse_yaml(text: str, where: str = "<string>") -> Any:
    """Parse YAML ``text`` with the bounds of :func:`load_yaml`; ``where`` names the source in errors."""
    import yaml

    loader = None
    try:
        loader = _bounded_loader()(text, where)
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = f":{mark.line + 1}"
        elif isinstance(getattr(exc, "position", None), int):  # a reader error (a control character)
            line = f":{text.count(chr(10), 0, exc.position) + 1}"  # type: ignore[attr-defined]
        else:
            line = ""
        raise ConfigError(f"{where}{line}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    check_structure(value, where)
    return value


@functools.lru_cache(maxsize=1)
def _bounded_loader() -> type:
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    merge_tag = "tag:yaml.org,2002:merge"

    class BoundedLoader(yaml.SafeLoader):
        """PyYAML's safe loader with a nesting limit, a merge-size limit and duplicate keys refused."""

        def __init__(self, text: str, where: str) -> None:
            super().__init__(text)
            self.name = where
            self._where = where
            self._depth = 0
            self._merged = 0

        def _line(self, node_or_mark: Any) -> str:
            mark = getattr(node_or_mark, "start_mark", node_or_mark)
            return f"{self._where}:{mark.line + 1}" if mark is not None else self._where

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise ConfigError(f"{self._line(self.peek_event())}: YAML nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def compose_mapping_node(self, anchor: Any) -> Any:
            node = super().compose_mapping_node(anchor)
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != merge_tag:
                    ident = (key_node.tag, key_node.value)
                    if ident in seen:
                        raise ConfigError(f"{self._line(key_node)}: duplicate key {key_node.value!r} "
                                          f"(first given on line {seen[ident]})")
                    seen[ident] = key_node.start_mark.line + 1
            return node

        def _count_merged(self, node: Any, n: int) -> None:
            self._merged += n
            if self._merged > MAX_NODES:
                raise ConfigError(f"{self._line(node)}: merge keys (<<) copy in more than {MAX_NODES:,} "
                                  "entries (nested aliases?); refusing to load it")

        def flatten_mapping(self, node: Any) -> None:
            # SafeConstructor.flatten_mapping with a bound on what merge keys (<<: *a) copy in
            merge: list[Any] = []
            index = 0
            while index < len(node.value):
                key_node, value_node = node.value[index]
                if key_node.tag == merge_tag:
                    del node.value[index]
                    if isinstance(value_node, MappingNode):
                        self.flatten_mapping(value_node)
                        merge.extend(value_node.value)
                        self._count_merged(node, len(value_node.value))
                    elif isinstance(value_node, SequenceNode):
                        submerge = []
                        for subnode in value_node.value:
                            if not isinstance(subnode, MappingNode):
                                raise ConstructorError("while constructing a mapping", node.start_mark,
                                                       f"expected a mapping for merging, but found {subnode.id}",
                                                       subnode.start_mark)
                            self.flatten_mapping(subnode)
                            submerge.append(subnode.value)
                        submerge.reverse()
                        for value in submerge:
                            merge.extend(value)
                            self._count_merged(node, len(value))
                    else:
                        raise ConstructorError("while constructing a mapping", node.start_mark,
                                               f"expected a mapping or list of mappings for merging, "
                                               f"but found {value_node.id}", value_node.start_mark)
                elif key_node.tag == "tag:yaml.org,2002:value":
                    key_node.tag = "tag:yaml.org,2002:str"
                    index += 1
                else:
                    index += 1
            if merge:
                node.value = merge + node.value

    return BoundedLoader


def check_structure(obj: Any, where: str = "", max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a parsed value that is too deep, too large once aliases are expanded, or refers to itself.

    YAML anchors and aliases make shared (or even recursive) Python objects: a few lines of
    nested aliases (``b: &b [*a, *a, ...]``) stand for billions of values that any later
    walk, copy or print would expand. The size is computed without expanding (memoised by
    object identity), so this is cheap. Raises :class:`ConfigError` naming ``where``.
    """
    memo: dict[int, tuple[int, int]] = {}  # id -> (expanded size, height)
    active: set[int] = set()

    def visit(x: Any, depth: int) -> tuple[int, int]:
        if isinstance(x, Mapping):
            children: Any = list(x.values())
            extra = len(x)
        elif isinstance(x, (list, tuple, set, frozenset)):
            children, extra = x, 0
        else:
            return 1, 0
        key = id(x)
        if key in memo:
            size, height = memo[key]
            if depth + height > max_depth:
                raise ConfigError(f"{where}: nested deeper than {max_depth} levels")
            return size, height
        if key in active:
            raise ConfigError(f"{where}: an alias refers to a section that contains it (a recursive structure)")
        if depth > max_depth:
            raise ConfigError(f"{where}: nested deeper than {max_depth} levels")
        active.add(key)
        size, height = 1 + extra, 0
        for child in children:
            s, h = visit(child, depth + 1)
            size += s
            height = max(height, h + 1)
            if size > max_nodes:
                raise ConfigError(f"{where}: expands to more than {max_nodes:,} values (nested aliases?); "
                                  "refusing to load it")
        active.discard(key)
        memo[key] = (size, height)
        return size, height

    visit(obj, 0)
