"""Reading what Slack shows from the database: whose gates are waiting."""

from sqlmodel import col, select

from bot.views import pending_gate_ids
from orchestrator.engine import Engine
from storage.models import Gate


def test_the_database_finds_a_persons_open_gates_by_exact_name(engine: Engine) -> None:
    """The App Home and `/baton status` ask for the open gates a person may decide; the
    database looks for the name in each gate's approvers (a JSON list), exactly: not a
    prefix, not a pattern, whatever characters the name has."""
    for _ in range(3):
        engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    names = ["ann", 'o"brien', "zoë", "50%_off", "back\\slash"]
    with engine.db.write() as s:
        first, second, third = s.exec(select(Gate).order_by(col(Gate.id))).all()
        first.approvers, second.approvers, third.approvers = names, ["anna"], ["ann"]
        third.status = "decided"
        s.add_all([first, second, third])
    with engine.db.read() as s:
        for name in names:
            assert pending_gate_ids(s, name) == [first.id], name
        assert pending_gate_ids(s, "anna") == [second.id]
        for name in ("an", "50", "%", "_", "o", "brien", '"ann"', "ANN", "back"):
            assert pending_gate_ids(s, name) == [], name
