"""Put the figures of the last test run into docs/reliability.md.

    python -m pytest -q                       # writes test-artifacts/reliability-<db>.json
    python -m tests.reliability.report        # rewrites the figures part of the report

Only the part between the `figures` markers changes; the prose around it is written by hand.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.figures import ARTIFACTS, FORMAT, ROOT

REPORT = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
ITEMS = {"1": "Crash at every step", "2": "Concurrency", "3": "Slack faults",
         "4": "Requests from outside", "5": "Hostile text and code", "6": "Fuzzing",
         "8": "Replayed requests", "9": "Nested JSON", "10": "Replies only to Slack",
         "12": "The edit modal", "13": "Private answers and metrics"}
COLUMNS = ("requests_sent", "faults_injected", "refusals", "decisions_lost")


def _figure(record: dict[str, Any], name: str) -> str:
    return f"{record.get('figures', {}).get(name, 0):,}"


def _where(test_id: str) -> str:
    path, _, name = test_id.partition("::")
    return f"[`{name}`](../{path})"


def render(run: dict[str, Any]) -> str:
    tests = run["tests"]
    totals = run["totals"]
    lines = [
        f"### {run['database']}",
        "",
        f"Commit `{(run.get('commit') or 'unknown')[:10]}`, {run['generated_at']}, Python "
        f"{run['python']}: {len(tests)} tests, outcomes {run['outcomes']}, "
        f"{run['tests_s']:.0f} s of test time.",
        "",
        f"**{totals.get('requests_sent', 0):,} requests sent, "
        f"{totals.get('faults_injected', 0):,} faults injected, "
        f"{totals.get('refusals', 0):,} refusals, {totals.get('examples', 0):,} fuzz examples, "
        f"{totals.get('decisions_recorded', 0):,} decisions recorded, "
        f"decisions lost: {totals.get('decisions_lost', 0)}; "
        f"{totals.get('fuzzed_requests', 0):,} fuzzed requests through the HTTP endpoint, "
        f"server errors: {totals.get('server_errors', 0)}.**",
        "",
    ]
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in tests:
        by_item[record["item"]].append(record)
    for item in sorted(by_item, key=lambda i: (len(i), i)):  # 2 before 10
        lines += [f"#### {item}. {ITEMS.get(item, '')}", "",
                  "| test | outcome | requests | faults | refusals | decisions lost | other | s |",
                  "|---|---|--:|--:|--:|--:|---|--:|"]
        for record in by_item[item]:
            other = {k: v for k, v in record.get("figures", {}).items() if k not in COLUMNS}
            other.update(record.get("notes", {}))
            shown = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else
                              f"{k.replace('_', ' ')} {v}" for k, v in other.items())
            lines.append(f"| {_where(record['test'])} | {record['outcome']} | "
                         + " | ".join(_figure(record, c) for c in COLUMNS)
                         + f" | {shown} | {record.get('duration_s', 0):.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    runs = []
    for database in ("sqlite", "postgresql"):
        path = ARTIFACTS / f"reliability-{database}.json"
        if path.exists():
            run = json.loads(path.read_text(encoding="utf-8"))
            if run.get("format") != FORMAT:
                print(f"{path}: format {run.get('format')!r}, expected {FORMAT!r}", file=sys.stderr)
                return 2
            runs.append(run)
    if not runs:
        print(f"no figures in {ARTIFACTS}: run the tests first (python -m pytest -q)", file=sys.stderr)
        return 2
    text = REPORT.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{REPORT} lacks the {BEGIN} ... {END} markers", file=sys.stderr)
        return 2
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    body = "\n".join(render(run) for run in runs)
    Path(REPORT).write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}", encoding="utf-8")
    print(f"{REPORT.relative_to(ROOT)}: figures of {', '.join(r['database'] for r in runs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
