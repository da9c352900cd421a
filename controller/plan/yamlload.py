"""YAML for specs, strictly: a duplicate key, an alias bomb or bytes that are not UTF-8 are
errors naming the file and line, never a silent last-value-wins or a process killed for
memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_VALUES = 100_000
"""At most this many values once aliases are expanded (a spec has hundreds)."""


class YamlProblem(ValueError):
    """One line: what is wrong, with the line number when there is one."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise YamlProblem(f"duplicate key {key!r} at line {line} (first at line {seen[key]})")
            except TypeError:
                raise YamlProblem(f"unhashable key at line {line}") from None
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(value: Any, memo: dict[int, int], open_ids: set[int]) -> int:
    """How many values ``value`` holds with every alias expanded (shared objects counted per use)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in memo:
        return memo[key]
    if key in open_ids:
        raise YamlProblem("a recursive alias (an anchor used inside itself)")
    open_ids.add(key)
    children = value.values() if isinstance(value, dict) else value
    size = 1 + sum(_expanded_size(v, memo, open_ids) for v in children)
    open_ids.discard(key)
    memo[key] = size
    if size > MAX_VALUES:
        raise YamlProblem(f"aliases expand to more than {MAX_VALUES:,} values")
    return size


def load_yaml(path: Path) -> Any:
    """The document in ``path``; YamlProblem (one line, no path) on anything malformed."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise YamlProblem(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise YamlProblem("nested too deeply") from None
    _expanded_size(doc, {}, set())
    return doc
