"""Splitting what people type after `/baton` into words.

People type quotes in every style ("two words", 'two words', and the curly quotes Slack's
editors substitute), `=` inside values, empty values, any Unicode. Each word either
parses or is refused with a message that says what was wrong; nothing is dropped.
Slack sends `&`, `<`, `>` as HTML entities and mentions as `<@U123|name>`; both are turned
back into what the person meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.text import well_formed

# straight, curly (as Slack's editor substitutes them), low-9 and guillemet quotes
QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201e": "\u201c",
          "\u00ab": "\u00bb"}
_MENTION = re.compile(r"<([@#!])([A-Z0-9^]+)(?:\|([^>]*))?>")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class ArgumentError(ValueError):
    pass


def unslack(text: str) -> str:
    """Slack's wire format back to what was typed: mentions become @U123, #C123. Invalid
    UTF-8 (a lone surrogate from JSON's `\\udcff`) becomes U+FFFD, as a decoder shows it."""
    text = well_formed(text)
    text = _MENTION.sub(lambda m: f"{m.group(1)}{m.group(2)}".replace("!subteam^", "@"), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_words(text: str) -> list[str]:
    """Shell-like splitting on whitespace, honouring quotes of any style. A quote may
    open anywhere in a word (`note="two words"`); backslash escapes the next character
    inside double quotes."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch in QUOTES:
            close = QUOTES[ch]
            j = i + 1
            chunk: list[str] = []
            while j < len(text) and text[j] != close and not (close == '"' and text[j] == "”"):
                if text[j] == "\\" and ch == '"' and j + 1 < len(text):
                    j += 1
                chunk.append(text[j])
                j += 1
            if j >= len(text):
                raise ArgumentError(f"missing closing quote ({close}) after {text[i:i + 20]!r}")
            current.extend(chunk)
            i = j + 1
            continue
        current.append(ch)
        i += 1
    if in_word:
        words.append("".join(current))
    return words


@dataclass
class Parsed:
    assignments: dict[str, str]
    words: list[str]
    options: dict[str, str]


def parse(words: list[str], *, options: tuple[str, ...] = ()) -> Parsed:
    """`key=value` assignments, `--option value` pairs for the names in `options`, and the
    remaining plain words, in order."""
    assignments: dict[str, str] = {}
    plain: list[str] = []
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            if name not in options:
                known = ", ".join(f"--{o}" for o in options) or "none"
                raise ArgumentError(f"unknown option --{name}; options here: {known}")
            if not eq:
                if i + 1 >= len(words):
                    raise ArgumentError(f"--{name} needs a value")
                i += 1
                value = words[i]
            found[name] = value
        elif "=" in word and not word.startswith("="):
            key, _, value = word.partition("=")
            if not _KEY.match(key):
                raise ArgumentError(f"{key!r} is not a valid input name (letters, digits, _)")
            if key in assignments:
                raise ArgumentError(f"{key!r} is given twice")
            assignments[key] = value
        else:
            plain.append(word)
        i += 1
    return Parsed(assignments, plain, found)
