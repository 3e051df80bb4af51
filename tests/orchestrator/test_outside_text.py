"""Text and numbers from outside that Python accepts but storage or time arithmetic would
not: each is refused with a clear error or made storable, and nothing is half-written."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from gates.durations import parse_duration
from orchestrator.callables import CallableError, CallableLoader
from orchestrator.engine import Engine, parse_ref
from orchestrator.errors import NotFound
from orchestrator.readers.export import verify_run
from orchestrator.text import needs_cleaning, well_formed
from storage.models import Decision, TraceEntry


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nanm", "infh", 1e300, "1e300d"])
def test_durations_that_are_not_a_length_of_time_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_a_run_id_larger_than_any_database_holds_is_simply_not_found() -> None:
    assert parse_ref("R-9223372036854775807") == 2**63 - 1
    with pytest.raises(NotFound, match="no run R-9223372036854775808"):
        parse_ref("R-9223372036854775808")


def test_lone_surrogates_become_the_replacement_character_everywhere() -> None:
    assert well_formed({"a\udcff": ["x\ud800", ("y",), 3]}) == {"a\ufffd": ["x\ufffd", ["y"], 3]}
    assert well_formed("fine ✓") == "fine ✓" and well_formed(None) is None
    assert well_formed("nul\x00") == "nul\ufffd"  # PostgreSQL refuses NUL in text and jsonb


_char = st.sampled_from(["a", "\x00", "\ud800", "\udcff", "\\", "u", "0", "\"", "é", "\n"])
_text = st.lists(_char, max_size=8).map("".join)
_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _text,
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_text | st.integers(), inner, max_size=3), max_leaves=10)


@settings(max_examples=500, deadline=None)
@given(value=_values)
def test_what_needs_cleaning_is_never_missed(value: object) -> None:
    """An agent's output skips the cleaning walk only when one pass over its JSON finds
    nothing to clean: whatever `well_formed` would change, `needs_cleaning` says so."""
    if repr(well_formed(value)) != repr(value):  # repr: NaN equals itself there
        assert needs_cleaning(value)


def test_a_reason_with_invalid_utf8_or_nul_is_recorded_readably_and_the_trace_stays_whole(
        engine: Engine) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    engine.decide(run.ref, "bob", "approve", reason="ok \udcff\x00")
    final = engine.get_run(run.ref)
    assert final.status == "succeeded"
    with engine.db.read() as s:
        (decision,) = s.exec(select(Decision).where(Decision.run_id == run.id)).all()
        (entry,) = s.exec(select(TraceEntry).where(TraceEntry.chain == run.ref,
                                                   TraceEntry.kind == "decision")).all()
    assert decision.reason == entry.data["reason"] == "ok \ufffd\ufffd"
    assert verify_run(engine.db, final) is None


def test_a_function_an_allowed_module_merely_imported_is_not_callable(tmp_path: Path) -> None:
    (tmp_path / "teamcode.py").write_text("from subprocess import run\n\ndef own(x):\n    return x\n")
    loader = CallableLoader(["teamcode"], tmp_path)
    try:
        assert loader.load("teamcode:own")("x") == "x"
        with pytest.raises(CallableError, match="comes from module 'subprocess'"):
            loader.load("teamcode:run")
    finally:
        sys.modules.pop("teamcode", None)
