"""The LangGraph side of the comparison: the same work as bench/flows/bench-approval.yaml.

Three agent nodes run in parallel from START and each returns a small dict (a verdict and a
summary, like Baton's rules agents), a gate node calls `interrupt()` to wait for a person,
and an action node runs once the gate is resumed with `Command(resume=...)`. State is
checkpointed by `SqliteSaver` to a file database in WAL mode with `synchronous=NORMAL`,
the settings Baton's own connections use (storage/engine.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

# LangGraph's durability modes: "sync" writes each step's checkpoint before the next step
# starts (what Baton does: every step commits before the next one begins); "async" (the
# default) writes it while the next step runs; "exit" only when the graph stops or interrupts.
EQUIVALENT_DURABILITY = "sync"


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class State(TypedDict, total=False):
    vendor: str
    amount: float
    signals: Annotated[dict[str, Any], _merge]
    decision: dict[str, Any]
    result: dict[str, Any]


def research(state: State) -> State:
    test = "test" in state["vendor"].lower()
    return {"signals": {"research": {
        "verdict": "warn" if test else "ok", "severity": "low" if test else "info",
        "summary": "Vendor name looks like a test account" if test else "No issues in historical cases"}}}


def risk(state: State) -> State:
    large = state["amount"] > 25000.0
    return {"signals": {"risk": {
        "verdict": "warn" if large else "ok", "severity": "medium" if large else "info",
        "summary": "Unusually large payment for this vendor" if large else "Amount within the usual range"}}}


def compliance(state: State) -> State:
    blocked = state["vendor"] in ("Blocked Ltd", "Sanctioned Inc")
    return {"signals": {"compliance": {
        "verdict": "block" if blocked else "ok", "severity": "high" if blocked else "info",
        "summary": "Vendor is on a sanctions list" if blocked else "Vendor not on a sanctions list"}}}


def gate(state: State) -> State:
    answer = interrupt({"gate": "approve", "title": "Approve the payment?",
                        "approvers": ["approver01", "approver02"], "options": ["approve", "reject"],
                        "signals": state["signals"]})
    return {"decision": answer}


def action(state: State) -> State:
    if state["decision"].get("option") != "approve":
        return {"result": {"status": "rejected"}}
    return {"result": {"status": "paid", "paid": state["amount"]}}


def build_graph(saver: SqliteSaver) -> Any:
    builder = StateGraph(State)
    for name, node in (("research", research), ("risk", risk), ("compliance", compliance),
                       ("gate", gate), ("action", action)):
        builder.add_node(name, node)
    for agent in ("research", "risk", "compliance"):
        builder.add_edge(START, agent)
        builder.add_edge(agent, "gate")
    builder.add_edge("gate", "action")
    builder.add_edge("action", END)
    return builder.compile(checkpointer=saver)


def connect(path: Path) -> sqlite3.Connection:
    """The checkpointer's connection, with Baton's durability settings."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class LangGraphSide:
    """Start a run to its interrupt, resume it to the end; one thread id per run."""

    def __init__(self, path: Path, durability: str = EQUIVALENT_DURABILITY) -> None:
        self.path = path
        self.conn = connect(path)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()
        self.graph = build_graph(self.saver)
        self.durability = durability

    def suspend(self, thread: str, inputs: dict[str, Any]) -> None:
        out = self.graph.invoke({**inputs, "signals": {}}, {"configurable": {"thread_id": thread}},
                                durability=self.durability)
        if "__interrupt__" not in out:
            raise AssertionError(f"LangGraph run {thread} did not stop at its gate: {out}")

    def resume(self, thread: str, user: str, option: str) -> None:
        out = self.graph.invoke(Command(resume={"option": option, "by": user}),
                                {"configurable": {"thread_id": thread}}, durability=self.durability)
        if out.get("result", {}).get("status") != "paid":
            raise AssertionError(f"LangGraph run {thread} did not finish: {out}")

    def close(self) -> None:
        self.conn.close()
