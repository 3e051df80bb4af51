"""Slack text as the sandbox page shows it: mrkdwn and plain_text made into escaped HTML.

Every piece of text that reaches the HTML goes through `html.escape`; markup comes only
from this module. What Slack would turn into a mention, a channel, a link or a date is
recognised only in the `<...>` syntax a bot writes; text a person typed arrives escaped
(`&lt;`) and is shown as the characters it stands for, never as markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

# The shortcodes Baton's messages use, and the common ones people type.
EMOJI = {
    "white_check_mark": "\u2705", "heavy_check_mark": "\u2714\ufe0f", "x": "\u274c",
    "large_green_circle": "\U0001f7e2", "large_yellow_circle": "\U0001f7e1", "red_circle": "\U0001f534",
    "white_circle": "\u26aa", "large_blue_circle": "\U0001f535", "black_circle": "\u26ab",
    "rotating_light": "\U0001f6a8", "bell": "\U0001f514", "hourglass_flowing_sand": "\u23f3",
    "hourglass": "\u231b", "no_entry": "\u26d4", "no_entry_sign": "\U0001f6ab",
    "octagonal_sign": "\U0001f6d1", "warning": "\u26a0\ufe0f", "information_source": "\u2139\ufe0f",
    "arrows_counterclockwise": "\U0001f504", "double_vertical_bar": "\u23f8\ufe0f",
    "leftwards_arrow_with_hook": "\u21a9\ufe0f", "repeat": "\U0001f501", "alarm_clock": "\u23f0",
    "ok_hand": "\U0001f44c", "thinking_face": "\U0001f914", "arrow_forward": "\u25b6\ufe0f",
    "arrow_right": "\u27a1\ufe0f", "sunny": "\u2600\ufe0f", "raising_hand": "\U0001f64b", "zzz": "\U0001f4a4",
    "tada": "\U0001f389", "eyes": "\U0001f440", "thumbsup": "\U0001f44d", "+1": "\U0001f44d",
    "thumbsdown": "\U0001f44e", "-1": "\U0001f44e", "wave": "\U0001f44b", "smile": "\U0001f604",
    "slightly_smiling_face": "\U0001f642", "heart": "\u2764\ufe0f", "fire": "\U0001f525",
    "rocket": "\U0001f680",
    "memo": "\U0001f4dd", "lock": "\U0001f512", "key": "\U0001f511", "moneybag": "\U0001f4b0",
    "hammer_and_wrench": "\U0001f6e0\ufe0f", "gear": "\u2699\ufe0f", "mag": "\U0001f50d",
    "clipboard": "\U0001f4cb", "calendar": "\U0001f4c6", "stopwatch": "\u23f1\ufe0f", "pushpin": "\U0001f4cc",
    "question": "\u2753", "exclamation": "\u2757", "heavy_plus_sign": "\u2795", "link": "\U0001f517",
    "robot_face": "\U0001f916", "bust_in_silhouette": "\U0001f464", "busts_in_silhouette": "\U0001f465",
    "speech_balloon": "\U0001f4ac", "inbox_tray": "\U0001f4e5", "outbox_tray": "\U0001f4e4",
    "chart_with_upwards_trend": "\U0001f4c8", "checkered_flag": "\U0001f3c1", "construction": "\U0001f6a7",
    "stop_sign": "\U0001f6d1", "no_bell": "\U0001f515", "point_right": "\U0001f449",
}

# Characters the page uses as placeholders while it assembles markup; never shown.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_PRIVATE = re.compile("[\ue000-\ue0ff]")
# Direction overrides would reorder what people read; the page shows them instead, so a
# message that carries one is noticed rather than silently garbled.
_BIDI = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_PLACEHOLDER = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")
_ENTITY = re.compile(r"&(lt|gt|amp);")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_FENCE = re.compile(r"```(.*?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_CONTROL = re.compile(r"<([^<>\n]+)>")
# *bold*, _italic_, ~strike~: the marker must hug the words and not sit inside a word.
_STYLES = (("b", re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")),
           ("i", re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")),
           ("s", re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])")))
_SAFE_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Names:
    """How `<@U…>`, `<#C…>` and `<!subteam^S…>` read: lookups into the workspace."""

    user: Callable[[str], str | None]
    channel: Callable[[str], str | None]
    group: Callable[[str], str | None]
    viewer: str | None = None

    @classmethod
    def none(cls) -> Names:
        return cls(user=lambda _: None, channel=lambda _: None, group=lambda _: None)


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def decode_entities(text: str) -> str:
    """The three entities Slack asks apps to escape, back to the characters they stand for."""
    return _ENTITY.sub(lambda m: {"lt": "<", "gt": ">", "amp": "&"}[m.group(1)], text)


def emojify(text: str) -> str:
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def _visible_controls(text: str) -> str:
    text = _PRIVATE.sub("\ufffd", text)
    return _BIDI.sub(lambda m: f"[U+{ord(m.group(0)):04X}]", text)


def plain_html(text: str, *, emoji: bool = True) -> str:
    """A plain_text object's text: shown literally (entities decoded), newlines kept."""
    shown = decode_entities(_visible_controls(text))
    if emoji:
        shown = emojify(shown)
    return esc(shown).replace("\n", "<br>")


class _Pieces:
    """Markup fragments set aside while the rest of the text is formatted."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def keep(self, markup: str) -> str:
        self.items.append(markup)
        return f"{_MARK_OPEN}{len(self.items) - 1}{_MARK_CLOSE}"

    def restore(self, text: str) -> str:
        # Pieces can hold pieces (a link around bold text): restore until none is left.
        while _PLACEHOLDER.search(text):
            text = _PLACEHOLDER.sub(lambda m: self.items[int(m.group(1))], text)
        return text


# Words of a code chip are kept whole when it wraps (`vendor-payment`, `amount=20000`), unless
# one is too long to fit a narrow line by itself (a URL, a hash)
_WHOLE_WORD = 40


def code_html(code: str) -> str:
    """An inline code chip that wraps at its spaces only, not inside a word at a `-` or `/`."""
    words = (f'<span class="w">{esc(word)}</span>' if 0 < len(word) <= _WHOLE_WORD else esc(word)
             for word in code.split(" "))
    return f"<code>{' '.join(words)}</code>"


def mrkdwn_html(text: str, names: Names | None = None) -> str:
    """A mrkdwn object's text as HTML."""
    names = names or Names.none()
    pieces = _Pieces()
    text = _visible_controls(text)
    text = _FENCE.sub(lambda m: pieces.keep(f"<pre>{esc(decode_entities(m.group(1).strip(chr(10))))}</pre>"),
                      text)
    text = _CODE.sub(lambda m: pieces.keep(code_html(decode_entities(m.group(1)))), text)
    text = _CONTROL.sub(lambda m: pieces.keep(_control(m.group(1), names)), text)
    lines = []
    for line in text.split("\n"):
        # A quote is a `>` the bot wrote; a typed one arrives as `&gt;` and stays text.
        quoted = line.startswith(">")
        body = _styled(emojify(decode_entities(line[1:].lstrip(" ") if quoted else line)))
        lines.append(f"<blockquote>{body}</blockquote>" if quoted else body)
    return pieces.restore("<br>".join(lines)).replace("</pre><br>", "</pre>")


def _styled(text: str) -> str:
    """Escape `text`, turning *bold*, _italic_ and ~strike~ into markup (nested too).

    Placeholders survive escaping untouched: they are private-use characters.
    """
    best: tuple[int, str, re.Match[str]] | None = None
    for tag, pattern in _STYLES:
        found = pattern.search(text)
        if found and (best is None or found.start() < best[0]):
            best = (found.start(), tag, found)
    if best is None:
        return esc(text)
    _, tag, found = best
    return esc(text[:found.start()]) + f"<{tag}>{_styled(found.group(1))}</{tag}>" + \
        _styled(text[found.end():])


def _control(inner: str, names: Names) -> str:
    """One `<...>` sequence: a mention, channel, group, special mention, date or link."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user_id = target[1:]
        name = names.user(user_id) or label or user_id
        mine = " me" if names.viewer and user_id == names.viewer else ""
        return f'<span class="mention{mine}" data-user="{esc(user_id)}">@{esc(decode_entities(name))}</span>'
    if target.startswith("#"):
        channel_id = target[1:]
        name = names.channel(channel_id) or label or channel_id
        return (f'<span class="mention channel" data-channel="{esc(channel_id)}">'
                f"#{esc(decode_entities(name))}</span>")
    if target.startswith("!subteam^"):
        group_id = target.removeprefix("!subteam^")
        handle = names.group(group_id) or label.lstrip("@") or group_id
        return f'<span class="mention group">@{esc(decode_entities(handle))}</span>'
    if target.startswith("!date^"):
        parts = target.split("^")
        fallback = label or (parts[2] if len(parts) > 2 else "")
        title = ""
        if len(parts) > 1 and parts[1].isdigit():
            title = f' title="{esc(datetime.fromtimestamp(int(parts[1]), UTC).isoformat())}"'
        return f'<time class="date"{title}>{esc(decode_entities(fallback))}</time>'
    if target.startswith("!"):
        word = target[1:].split("^")[0]
        return f'<span class="mention special">@{esc(decode_entities(label or word))}</span>'
    url = decode_entities(target)
    shown = decode_entities(label) if label else url
    if url.lower().startswith(_SAFE_SCHEMES):
        return (f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
                f"{esc(shown)}</a>")
    return esc(f"<{decode_entities(inner)}>")
