"""A small reader of Terraform's text: blocks, their attributes and the expressions' raw text.

python-hcl2 turns expressions such as `merge(local.common, { A = 1 })` into opaque strings; the
deploy contract and the moto configuration need the expressions themselves (which keys a map
sets, which modules an argument refers to), so this reads the text: strings, heredocs and
comments are masked, and brackets are matched on what remains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_OPEN, _CLOSE = "{[(", "}])"


def _skip_string(text: str, i: int) -> int:
    """Index after the string that starts at text[i] == '"' (interpolations may nest strings)."""
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif text.startswith("${", i) or text.startswith("%{", i):
            i = _skip_template(text, i + 2)
        else:
            i += 1
    return i


def _skip_template(text: str, i: int) -> int:
    depth = 1
    while i < len(text) and depth:
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        depth += (c == "{") - (c == "}")
        i += 1
    return i


def mask(text: str) -> str:
    """The text with comments, strings' contents and heredocs blanked (same length)."""
    out = list(text)
    i = 0

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, len(out))):
            if out[k] != "\n":
                out[k] = " "

    while i < len(text):
        if text[i] == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
            blank(i, end)
            i = end
        elif text[i] == '"':
            end = _skip_string(text, i)
            blank(i + 1, end - 1)
            i = end
        elif heredoc := re.match(r"<<-?([A-Za-z_]+)\n", text[i:]):
            closing = re.compile(rf"^\s*{heredoc[1]}\s*$", re.MULTILINE)
            found = closing.search(text, i + heredoc.end())
            end = len(text) if found is None else found.end()
            blank(i, end)
            i = end
        else:
            i += 1
    return "".join(out)


def _depths(masked: str) -> list[int]:
    depth, out = 0, []
    for c in masked:
        if c in _CLOSE:
            depth -= 1
        out.append(depth)
        if c in _OPEN:
            depth += 1
    return out


@dataclass(frozen=True)
class Block:
    kind: str
    labels: tuple[str, ...]
    body: str  # the text between the braces
    path: Path | None = None

    def attributes(self) -> dict[str, str]:
        return attributes(self.body)

    def blocks(self, kind: str | None = None) -> list[Block]:
        return blocks(self.body, kind, self.path)


_HEADER = re.compile(r'^[ \t]*([A-Za-z_][\w-]*)((?:[ \t]+"[^"\n]*")*)[ \t]*\{', re.MULTILINE)


def blocks(text: str, kind: str | None = None, path: Path | None = None) -> list[Block]:
    """The top-level blocks of `text` (of one kind, if given)."""
    masked = mask(text)
    depths = _depths(masked)
    found = []
    for match in _HEADER.finditer(text):
        start = match.end() - 1
        if depths[match.start(1)] != 0 or masked[start] != "{" or masked[match.start(1)] == " ":
            continue
        if kind is not None and match[1] != kind:
            continue
        end = start + 1
        while end < len(text) and not (masked[end] == "}" and depths[end] == 0):
            end += 1
        labels = tuple(re.findall(r'"([^"\n]*)"', match[2]))
        found.append(Block(match[1], labels, text[start + 1 : end], path))
    return found


def attributes(body: str) -> dict[str, str]:
    """name -> raw expression text of the attributes at the body's top level."""
    masked = mask(body)
    depths = _depths(masked)
    out: dict[str, str] = {}
    for match in re.finditer(r"^[ \t]*([A-Za-z_][\w-]*)[ \t]*=(?!=)", masked, re.MULTILINE):
        if depths[match.start(1)] != 0:
            continue
        end = match.end()
        while end < len(body) and not (masked[end] == "\n" and depths[end] == 0):
            end += 1
        out[match[1]] = strip_comments(body[match.end() : end]).strip()
    return out


def strip_comments(text: str) -> str:
    masked = mask(text)
    out = []
    i = 0
    while i < len(text):
        if masked[i] == " " and text[i] != " " and text[i] != "\t":
            # blanked: a comment, a heredoc or a string's contents; keep strings and heredocs
            start = i
            while i < len(text) and masked[i] == " " and text[i] != "\n":
                i += 1
            chunk = text[start:i]
            stripped = chunk.lstrip()
            out.append("" if stripped.startswith(("#", "//", "/*")) else chunk)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def folder_blocks(folder: Path, kind: str | None = None) -> list[Block]:
    """Every top-level block of every .tf file of a folder."""
    found: list[Block] = []
    for path in sorted(folder.glob("*.tf")):
        found += blocks(path.read_text(), kind, path)
    return found


def object_keys(expression: str) -> set[str]:
    """Keys of the object constructors in an expression (`{ A = 1, "B" = 2 }` -> {A, B})."""
    text = strip_comments(expression)
    masked = mask(text)
    bare = re.findall(r"(?:^|[{,\s])([A-Za-z_][\w-]*)[ \t]*=(?!=)", masked)
    quoted = re.findall(r'(?:^|[{,\s])"([A-Za-z_][\w-]*)"[ \t]*=(?!=)', text)
    return set(bare) | set(quoted)


def object_items(expression: str) -> dict[str, str]:
    """The items of an object constructor written one per line (`{ a = x \n b = y }`)."""
    text = expression.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return {}
    return attributes(text[1:-1])


def references(expression: str, kind: str) -> set[str]:
    """Names referenced as `<kind>.<name>` (kind: module, var, local, data...)."""
    text = strip_comments(expression)
    return set(re.findall(rf"(?<![\w.]){kind}\.([A-Za-z_][\w-]*)", text))
