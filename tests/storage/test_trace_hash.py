"""A trace entry's hash is put together around its data's canonical JSON (`entry_hash`),
without encoding the whole body again. It must be the hash `baton trace verify` recomputes
from the stored entry (`compute_hash` over `entry_body`), whatever the data holds."""

from datetime import UTC, datetime

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.engine import Engine
from orchestrator.readers.export import verify_run
from storage.trace import body, canonical_json, compute_hash, entry_hash

_text = st.text(max_size=12)  # any code point: quotes, backslashes, controls, non-ASCII
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(prev=st.sampled_from(["", "ab" * 32]), chain=_text, seq=st.integers(1, 10**9),
       kind=_text, actor=_text, node=st.none() | _text,
       data=st.dictionaries(_text, _json, max_size=5),
       at=st.datetimes(timezones=st.just(UTC)))
def test_the_hash_of_encoded_data_is_the_hash_of_the_entry(
        prev: str, chain: str, seq: int, kind: str, actor: str, node: str | None,
        data: dict, at: datetime) -> None:
    assert entry_hash(prev, chain, seq, kind, actor, node, canonical_json(data), at) == \
        compute_hash(prev, body(chain, seq, kind, actor, node, data, at))


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=4))
def test_entries_of_one_time_and_of_others_in_turn_hash_their_own_time(
        times: list[datetime]) -> None:
    # entry_hash keeps the text of the last time it wrote: the same time again, then
    # another, then the first again (as equal values and as the same object)
    for at in [*times, times[0], times[0].replace(), *reversed(times)]:
        assert entry_hash("", "run:1", 1, "k", "a", None, "{}", at) == \
            compute_hash("", body("run:1", 1, "k", "a", None, {}, at))


def test_entries_verify_and_keep_the_key_order_they_were_recorded_in(engine: Engine) -> None:
    """The chain verifies from what is stored; the column keeps the data's own key order
    (the readers show a dict's entries in that order), text as UTF-8."""
    run = engine.start_run("vendor-payment", {"vendor": "Ünïcode \"Ltd\"", "amount": "20000"},
                           "alice")
    engine.decide(run.ref, "bob", "approve", reason="Checked ✓")
    with engine.db.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT kind, CAST(data AS TEXT) FROM trace_entry "
                                           "WHERE chain = :c AND kind IN ('run_started', 'decision')"),
                                   {"c": run.ref}).all())
    assert stored["run_started"].startswith('{"flow":"vendor-payment",')
    assert "Ünïcode" in stored["run_started"]
    assert stored["decision"].startswith('{"gate":')
    assert verify_run(engine.db, engine.get_run(run.ref)) is None
