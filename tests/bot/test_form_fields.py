"""A Slack request's form body is read as `urllib.parse.parse_qsl` reads it, whatever the
body: `form_fields` only decodes well-formed ASCII bodies faster."""

import json
from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from bot.blocks import clean
from bot.http import form_fields

ODD = "ab%+=&;\\2F3cé\x00\n" + "0123456789ABCDEFabcdef"


@given(st.text(alphabet=ODD, max_size=40))
def test_any_body_gives_the_pairs_parse_qsl_gives(body: str) -> None:
    assert form_fields(body) == parse_qsl(body, keep_blank_values=True)


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=4))
def test_an_encoded_form_reads_back(fields: dict[str, str]) -> None:
    body = urlencode(fields)
    assert form_fields(body) == parse_qsl(body, keep_blank_values=True)


def test_an_interaction_payload_reads_back_whole() -> None:
    payload = {"type": "block_actions", "text": "50% off & more + less \\ é 🎉 %zz",
               "actions": [{"value": json.dumps({"g": 1})}]}
    body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)})
    assert json.loads(dict(form_fields(body))["payload"]) == payload


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=30) | st.text(max_size=30))
def test_cleaning_ascii_and_other_text_alike(text: str) -> None:
    """ASCII text takes a shortcut through `clean`; it must drop what the slow path drops."""
    from bot.blocks import _shown

    assert clean(text) == "".join(ch for ch in text if _shown(ch))
