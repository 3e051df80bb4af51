"""Offline example agents. Each takes an AgentContext and returns a signal as a dict."""

from __future__ import annotations

from typing import Any

# A stand-in for a sanctions list lookup.
SANCTIONED = {"shady corp", "evil industries", "blocked vendor ltd"}


def sanctions_check(ctx: Any) -> dict[str, Any]:
    vendor = str(ctx.inputs.get("vendor", "")).strip()
    if vendor.lower() in SANCTIONED:
        return {"verdict": "block", "severity": "critical", "confidence": 0.99,
                "summary": f"{vendor} is on the sanctions list",
                "rationale": "Exact match on the consolidated sanctions list",
                "evidence": [f"sanctions-list entry: {vendor.lower()}"]}
    return {"verdict": "ok", "severity": "info", "confidence": 0.95,
            "summary": "No sanctions match",
            "rationale": f"{vendor!r} does not match any sanctions-list entry",
            "evidence": ["checked the consolidated sanctions list"]}


def diagnose_incident(ctx: Any) -> dict[str, Any]:
    service = ctx.inputs.get("service", "?")
    severity = ctx.inputs.get("severity", "sev3")
    verdict = "warn" if severity in ("sev1", "sev2") else "ok"
    return {"verdict": verdict, "severity": {"sev1": "high", "sev2": "medium"}.get(severity, "low"),
            "summary": f"{service}: elevated error rate after the last deploy",
            "rationale": "Error rate rose within minutes of the deploy; rollback advised",
            "evidence": [f"{service} 5xx rate 4.2% (baseline 0.1%)"]}


def plan_release_checks(ctx: Any) -> dict[str, Any]:
    components = [c.strip() for c in str(ctx.inputs.get("components", "")).split(",") if c.strip()]
    return {"summary": f"{len(components)} component checks planned",
            "subtasks": [{"title": f"check {c}", "input": {"component": c}} for c in components]}


def check_component(ctx: Any) -> dict[str, Any]:
    component = ctx.subtask["input"]["component"]
    if component in ("db", "database", "migrations"):
        return {"verdict": "warn", "severity": "medium",
                "summary": f"{component}: schema migration without a rollback script"}
    return {"verdict": "ok", "summary": f"{component}: tests green, no risky changes"}
