"""What a run's API view reads: its gates, the decisions taken on them, its actions."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import Action, Decision, Gate, Run


def run_by_request(session: Session, request_key: str) -> Run | None:
    """The run one request (an idempotency key) started, if any."""
    return session.exec(select(Run).where(Run.request_key == request_key)).first()


def gates_of_run(session: Session, run_id: int) -> list[Gate]:
    return list(session.exec(select(Gate).where(Gate.run_id == run_id).order_by(col(Gate.id))))


def decisions_of_run(session: Session, run_id: int) -> list[Decision]:
    return list(session.exec(select(Decision).where(Decision.run_id == run_id)
                             .order_by(col(Decision.created_at), col(Decision.id))))


def decisions_of_gate(session: Session, gate_id: int) -> list[Decision]:
    return list(session.exec(select(Decision).where(Decision.gate_id == gate_id)
                             .order_by(col(Decision.id))))


def actions_of_run(session: Session, run_id: int) -> list[Action]:
    return list(session.exec(select(Action).where(Action.run_id == run_id)
                             .order_by(col(Action.id))))
