"""Safe YAML for the files and values a user hands to zoo (``registry.yaml``, ``--set``, ``--dataset-arg``).

``yaml.safe_load`` already refuses arbitrary Python objects; this adds the guards it lacks:

* a duplicate key in a mapping is an error naming the key and its line (PyYAML silently keeps
  the last one);
* aliases are limited: at most :data:`MAX_ALIASES` ``*alias`` references per document, and the
  document *as expanded* (every alias counted as a full copy of what it refers to) at most
  :data:`MAX_EXPANDED_NODES` nodes — a few hundred bytes of nested aliases ("billion laughs")
  would otherwise become gigabytes the moment anything copies or prints the value;
* a file is read as bytes, at most :data:`MAX_FILE_BYTES`, and must be UTF-8.

Every problem is a :class:`YamlError` (a ``ValueError``) whose message names the source (a file or
``--set key``) and, where there is one, the line; callers turn it into their own ``ZooError``.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024  # registry.yaml is ~15 kB
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000


class YamlError(ValueError):
    """Malformed, duplicate-keyed, alias-bombed, oversized or non-UTF-8 YAML."""


class _SafeLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys and counts aliases."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlError(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); "
                                f"write the values out instead")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys may be overridden
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except Exception:  # unhashable keys: SafeConstructor reports them below
                    continue
                if key in seen:
                    raise YamlError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                    f"(first on line {seen[key] + 1}); keep one of them")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node, memo: dict) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (memoised per node object,
    so measuring a bomb costs as much as its text, not as its expansion)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias refers back to a node being measured; count it once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = size
    return size


def loads(text: str, source: str = "<yaml>"):
    """Parse one YAML document with the guards above; problems raise :class:`YamlError` naming ``source``."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_EXPANDED_NODES:
            raise YamlError(f"expands to {size:,} values through aliases, more than the limit of "
                            f"{MAX_EXPANDED_NODES:,}; write the values out instead")
        return loader.construct_document(node)
    except YamlError as exc:
        raise YamlError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise YamlError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def load_file(path, max_bytes: int | None = None):
    """Read and parse a YAML file: at most ``max_bytes`` (default :data:`MAX_FILE_BYTES`), UTF-8,
    guarded as in :func:`loads`."""
    path = Path(path)
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise YamlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise YamlError(f"{path}: larger than {max_bytes:,} bytes; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                        f"save it as UTF-8") from None
    return loads(text, os.fspath(path))
