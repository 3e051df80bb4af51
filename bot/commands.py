"""`/baton` sub-commands, the same whether typed as a slash command, in a DM to the bot,
or after an @-mention. Each returns what to say at once and, for `run`, the work to do
after Slack has been answered."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from bot.arguments import ArgumentError, parse, split_words, unslack
from bot.blocks import (
    Block,
    context,
    esc,
    fallback,
    fit,
    header,
    hide_paths,
    mrkdwn,
    plain,
    section,
)
from bot.render.common import STATUS_ICON, mentions, when
from bot.render.trace import runs_list, stats_message, trace_message
from gates.durations import parse_duration
from gates.org import SpecError
from orchestrator.engine import FINISHED, Engine, parse_ref
from orchestrator.errors import BatonError, NotFound
from orchestrator.gating import eligible
from orchestrator.inputs import parse_inputs, usage
from orchestrator.readers import report
from orchestrator.readers.export import export_run
from orchestrator.readers.queries import find_runs
from orchestrator.readers.stats import compute as compute_stats
from orchestrator.readers.summary import summarize
from orchestrator.wording import seconds
from storage import reads
from storage.records import Gate, Run
from storage.trace import chain_entries

log = structlog.get_logger("baton.commands")

HELP = [
    ("run FLOW key=value …", "start a run; its updates go into the thread under its card"),
    ("status [R-42]", "one run, or your open runs and what waits for you"),
    ("trace R-42 [full] [--share]", "why a run was decided the way it was; full sends you the "
     "whole trace by DM (--share posts it here)"),
    ("trace [--flow F] [--since 7d] [--decided-by @p]", "find runs"),
    ("stats [FLOW] [--since 7d] [--share]", "approval rates, escalations, time to decision, agent "
     "costs; for you alone unless --share"),
    ("stop R-42 [reason]", "stop a run (its requester or an admin)"),
    ("flows", "the flows you can run, with their inputs"),
    ("halt [reason]", "emergency stop of all runs and actions (admins)"),
    ("resume", "lift the emergency stop (admins)"),
    ("help", "this list"),
]


@dataclass
class Invocation:
    user: str  # the principal
    slack_user: str
    channel: str | None
    source: str  # command | dm | mention
    thread_ts: str | None = None
    now: datetime | None = None


@dataclass
class Reply:
    text: str
    blocks: list[Block] = field(default_factory=list)
    in_channel: bool = False

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": fallback(self.text)}
        if self.blocks:
            body["blocks"] = fit(self.blocks, "")
        return body


# What the command a BatonError points to (`see`) does, in Slack
_SEE = {"status": "lists your runs"}


def problem_reply(problem: BatonError | ArgumentError, verb: str | None = None) -> Reply:
    """A refusal in Slack: the problem once, then one line on what helps, written for Slack:
    the flow's own usage, the command that shows what there is, or the command's usage."""
    hint = _hint(verb) if verb else None
    if isinstance(problem, BatonError) and problem.usage:
        hint = f"Usage: `/baton {esc(problem.usage)}`"
    elif isinstance(problem, BatonError) and problem.see:
        hint = f"`/baton {esc(problem.see)}` {_SEE.get(problem.see, 'shows what there is')}"
    return error_reply(str(problem), hint)


# An error is shown in at most 3,000 characters; one built from a long command (a line per
# unknown input) is cut before it is cleaned, which costs time in proportion to its length.
MAX_ERROR = 4000


def error_reply(message: str, hint: str | None = None) -> Reply:
    message = hide_paths(message[:MAX_ERROR])
    blocks: list[Block] = [section(mrkdwn(":warning: *That did not work*")),
                           section(plain(message, 2900))]
    if hint:
        blocks.append(context(mrkdwn(hint)))
    return Reply(f"Error: {esc(message)}", blocks)


# The answer to a request Baton already has: Socket Mode redelivering an envelope whose
# acknowledgement was late, or someone replaying a captured request. It says nothing of
# what the first copy was told.
ALREADY_HANDLED = Reply("Baton already has this request", [context(mrkdwn(
    ":information_source: Baton already has this very request: it is handled once, and "
    "nothing was done again. To do it again, type the command afresh."))])


def help_reply(prefix: str = "/baton") -> Reply:
    lines = "\n".join(f"`{prefix} {esc(cmd)}` {esc(what)}" for cmd, what in HELP)
    return Reply("Baton commands", [section(mrkdwn(f"*Baton commands*\n{lines}"))])


# `--since 99999d` means "since ever": beyond this, dates overflow.
MAX_SINCE = timedelta(days=100 * 365)
# Database ids stop here (SQLite's and PostgreSQL's BIGINT); a bigger R-number overflowed.
MAX_RUN_ID = 2**63 - 1


def since(value: str) -> timedelta:
    """A `--since` duration as typed, or a refusal saying what one looks like."""
    try:
        return min(parse_duration(value), MAX_SINCE)
    except (ValueError, OverflowError):
        raise ArgumentError(f"--since {value!r}: expected a duration such as 7d, 12h or 30m") from None


def run_ref(word: str) -> str:
    """A run id as typed, refused here when it is not one or no run could have it."""
    if parse_ref(word) > MAX_RUN_ID:
        raise NotFound(f"no run {word}", see="status")
    return word


# Work done after Slack has its answer, given the request's key (so doing it twice is safe).
FollowUp = Callable[[str], Reply | None]


Upload = Callable[..., None]  # (channel, files, comment, thread_ts, once=key)
UploadPrivately = Callable[..., None]  # (slack user, files, comment, once=key)


class Commands:
    def __init__(self, engine: Engine, upload: Upload | None = None,
                 upload_privately: UploadPrivately | None = None) -> None:
        self.engine = engine
        self.org = engine.org
        self.upload = upload  # queue files for Slack: (channel, files, comment, thread_ts)
        self.upload_privately = upload_privately  # ... for one person alone, by DM
        # Each `/baton` verb and what answers it (HELP says the same to people).
        self.verbs: dict[str, Callable[[list[str], Invocation], tuple[Reply, FollowUp | None]]] = {
            "run": self.cmd_run, "status": self.cmd_status, "trace": self.cmd_trace,
            "stats": self.cmd_stats, "stop": self.cmd_stop, "halt": self.cmd_halt,
            "resume": self.cmd_resume, "flows": self.cmd_flows, "help": self.cmd_help,
        }

    def handle(self, text: str, who: Invocation) -> tuple[Reply, FollowUp | None]:
        try:
            words = split_words(unslack(text or ""))
        except ArgumentError as exc:
            return error_reply(str(exc), 'Quote values with spaces: `/baton run FLOW note="two words"`'), None
        if not words:
            return help_reply(), None
        verb, rest = words[0].lower(), words[1:]
        handler = self.verbs.get(verb)
        if handler is None:
            reply = help_reply("/baton")
            # plain_text: what was typed is shown as typed (a backtick in it cannot end the
            # code span and format the rest)
            return Reply(f"Unknown command {esc(verb)}", [
                section(plain(f":thinking_face: \u201c{verb}\u201d is not a Baton command.")),
                *reply.blocks]), None
        try:
            return handler(rest, who)
        except (BatonError, ArgumentError) as exc:
            return problem_reply(exc, verb), None
        except Exception:  # a bug, not the person's input: they still get an answer
            log.exception("command_failed", verb=verb)
            return error_reply("Baton could not do that because of an error on its side (logged "
                               "as command_failed). Try again; if it persists, tell whoever runs "
                               "Baton."), None

    # -- run ---------------------------------------------------------------------------------
    def cmd_run(self, words: list[str], who: Invocation) -> tuple[Reply, FollowUp | None]:
        if not words:
            flows, _ = self.engine.flows.load_all()
            raise BatonError("say which flow to run; flows: " + (", ".join(sorted(flows)) or "none"))
        program = self.engine.flows.get(words[0])
        parsed = parse(words[1:])
        if parsed.words:
            raise BatonError(f"{parsed.words[0]!r} is not key=value", usage=usage(program.flow))
        parse_inputs(program.flow, parsed.assignments)  # refuse bad input before answering
        origin = {"kind": "slack", "channel": who.channel, "user": who.slack_user,
                  "source": who.source}
        if who.thread_ts:
            origin["thread_ts"] = who.thread_ts

        def start(key: str) -> Reply | None:
            try:
                self.engine.start_run(program.name, parsed.assignments, who.user, origin=origin,
                                      request_key=key)
            except BatonError as exc:
                return problem_reply(exc)
            return None

        title = program.flow.title or program.name
        return Reply(f"Starting {esc(title)}…", [context(mrkdwn(
            f":hourglass_flowing_sand: Starting *{esc(title)}*; the run card appears in this "
            "conversation."))]), start

    # -- status ------------------------------------------------------------------------------
    def cmd_status(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        if words:
            return self._run_status(run_ref(words[0]), who), None
        with self.engine.db.read() as s:
            mine = reads.unfinished_runs_of(s, who.user, tuple(FINISHED), 20)
            waiting = reads.pending_gate_ids(s, who.user)
            gates = reads.gates_by_id(s, waiting[:20])
        now = who.now or self.engine.clock.now()
        blocks: list[Block] = [header(f"Waiting for you ({len(waiting)})")]
        for gate in gates:
            blocks.append(section(mrkdwn(self._gate_line(gate, now))))
        if not gates:
            blocks.append(section(mrkdwn("Nothing waits for your decision.")))
        blocks.append(header(f"Your open runs ({len(mine)})"))
        for run in mine:
            blocks.append(section(mrkdwn(f"{STATUS_ICON.get(run.status, '')} *{run.ref}* "
                                         f"`{esc(run.flow_name)}` · {esc(run.status)} · "
                                         f"started {when(run.created_at)}")))
        if not mine:
            blocks.append(section(mrkdwn("You have no open runs.")))
        return Reply(f"{len(waiting)} waiting for you, {len(mine)} open runs", blocks), None

    def _gate_line(self, gate: Gate, now: datetime) -> str:
        age = seconds((now - gate.opened_at).total_seconds())
        level = ""
        if gate.chain:
            level = f" · escalation level {gate.esc_level + 1} of {len(gate.chain['levels'])}"
        due = f" · next step {when(gate.next_deadline)}" if gate.next_deadline else ""
        if gate.esc_state == "claimed" and gate.claimed_by:
            due += f" · claimed by {esc(self.org.display(gate.claimed_by))}"
        elif gate.esc_state == "snoozed" and gate.snoozed_until:
            due += f" · snoozed until {when(gate.snoozed_until)}"
        return (f"*R-{gate.run_id}* `{esc(gate.key)}` {esc(gate.title)}\n"
                f"waiting {age}{level}{due}")

    def _run_status(self, ref: str, who: Invocation) -> Reply:
        run = self.engine.get_run(ref)
        now = who.now or self.engine.clock.now()
        blocks: list[Block] = [
            header(f"{run.ref} · {run.flow_name}"),
            section(mrkdwn(f"{STATUS_ICON.get(run.status, '')} *{esc(run.status)}* · requested by "
                           f"{mentions(self.org, [run.requester])} · {when(run.created_at)}")),
        ]
        if run.reason:
            blocks.append(context(plain(run.reason, 2000)))
        assert run.id is not None
        for gate in self.engine.open_gates(run.id):
            blocks.append(section(mrkdwn(self._gate_line(gate, now) + "\ncan decide: "
                                         + mentions(self.org, sorted(eligible(gate, run.requester))))))
        return Reply(f"{run.ref} {esc(run.status)}", blocks)

    # -- trace ---------------------------------------------------------------------------
    def cmd_trace(self, words: list[str], who: Invocation) -> tuple[Reply, FollowUp | None]:
        parsed = parse(_flags(words, "share"), options=("flow", "since", "decided-by", "share"))
        share = "share" in parsed.options
        refs = [w for w in parsed.words if w.lower() != "full"]
        if not refs:
            if share:
                raise ArgumentError("--share goes with a full trace: trace R-42 full --share")
            return self._find(parsed.options, who), None
        run = self.engine.get_run(run_ref(refs[0]))
        full = "full" in [w.lower() for w in parsed.words]
        if share and not full:
            raise ArgumentError("--share goes with a full trace: trace R-42 full --share")
        if share:
            self._may_share_trace(run, who)
        with self.engine.db.read() as s:
            entries = chain_entries(s, run.ref)
        summary = summarize(run, entries, self.org)
        message = trace_message(summary, self.org, report.sections(summary, self.org))
        reply = Reply(message["text"], message["blocks"], in_channel=share)
        if not full:
            return reply, None
        export = json.dumps(export_run(self.engine.db, run), indent=2, ensure_ascii=False)
        files = [{"filename": f"{run.ref}-trace.json", "title": f"{run.ref} trace (JSON)",
                  "content": export},
                 {"filename": f"{run.ref}-trace.md", "title": f"{run.ref} trace",
                  "content": report.markdown(summary, self.org)}]

        def upload(key: str) -> Reply | None:
            self._upload(who, files, f"Full trace of {run.ref}", once=f"{key}:files", share=share)
            return None

        if not share and who.source != "dm":
            reply.blocks.insert(1, context(mrkdwn(
                f":lock: The full trace of {run.ref} comes to you alone, by DM. "
                f"`/baton trace {run.ref} full --share` posts it here for everyone.")))
        return reply, upload

    def _may_share_trace(self, run: Run, who: Invocation) -> None:
        """Who may post a run's full trace into a channel: its requester, the people its gates
        named (they saw it to decide it), and admins. Anyone may read it privately."""
        assert run.id is not None
        with self.engine.db.read() as s:
            named = {p for gate in reads.gates_of_run(s, run.id) for p in gate.approvers}
        if who.user == run.requester or who.user in named or self.org.is_admin(who.user):
            return
        raise ArgumentError(f"only {run.ref}'s requester, its approvers or an admin may post its "
                            f"full trace in a channel; `/baton trace {run.ref} full` sends it to "
                            "you alone")

    def _find(self, options: dict[str, str], who: Invocation) -> Reply:
        now = who.now or self.engine.clock.now()
        since_at = now - since(options["since"]) if "since" in options else None
        decided_by = None
        if "decided-by" in options:
            try:
                decided_by = self.org.principal(options["decided-by"].removeprefix("@"))
            except SpecError:
                raise ArgumentError(f"--decided-by {options['decided-by']!r}: nobody by that name "
                                    "in Baton's org file; mention the person (@name) or use "
                                    "their name there") from None
        flow = options.get("flow")
        if flow is not None:
            self.engine.flows.get(flow)  # an unknown flow is an error, not an empty list
        mine = not options
        runs = find_runs(self.engine.db, requester=who.user if mine else None, flow=flow,
                         since=since_at, decided_by=decided_by)
        title = "Your recent runs" if mine else "Runs matching " + " ".join(
            f"--{k} {v}" for k, v in options.items())
        message = runs_list(self.org, runs, title)
        return Reply(message["text"], message["blocks"])

    def _upload(self, who: Invocation, files: list[dict[str, Any]], comment: str, once: str,
                *, share: bool) -> None:
        """Files for the conversation (`share`), or for the person who asked, by DM."""
        if not share:
            if self.upload_privately is not None:
                self.upload_privately(who.slack_user, files, comment, once=once)
            return
        if who.channel is None or self.upload is None:
            return
        self.upload(who.channel, files, comment, who.thread_ts, once=once)

    # -- stats -------------------------------------------------------------------------------
    def cmd_stats(self, words: list[str], who: Invocation) -> tuple[Reply, FollowUp | None]:
        parsed = parse(_flags(words, "share"), options=("since", "share"))
        share = "share" in parsed.options
        window = since(parsed.options.get("since", "7d"))  # `--since 3 weeks`: the 3 is wrong
        flow = parsed.words[0] if parsed.words else None
        if flow is not None:
            self.engine.flows.get(flow)
        figures = compute_stats(self.engine.db, now=who.now or self.engine.clock.now(),
                                since=window, flow=flow)
        message = stats_message(report.stats_lines(figures, self.org), flow)
        blocks = list(message["blocks"])
        if not share and who.source == "command":
            blocks.append(context(mrkdwn(":lock: For you alone, the chart too (by DM). "
                                         "`/baton stats --share` answers for everyone here.")))
        elif not share and who.source == "mention":
            blocks.append(context(mrkdwn(":lock: The chart comes to you alone, by DM; "
                                         "add --share to post it here.")))

        def chart(key: str) -> Reply | None:
            from orchestrator.readers.charts import stats_chart

            png = stats_chart(figures)
            self._upload(who, [{"filename": "baton-stats.png", "title": "Decisions per day and "
                                "time to a decision", "content_b64": base64.b64encode(png).decode()}],
                         "Baton stats" + (f" · {flow}" if flow else ""), once=f"{key}:chart",
                         share=share)
            return None

        return Reply(message["text"], blocks, in_channel=share), chart

    # -- stop / halt / resume ----------------------------------------------------------------
    def cmd_stop(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        if not words:
            raise BatonError("say which run: stop R-42 [reason]")
        run = self.engine.stop(run_ref(words[0]), who.user, " ".join(words[1:]) or None)
        return Reply(f"{run.ref} stopped", [section(mrkdwn(f":octagonal_sign: {run.ref} stopped."))]), None

    def cmd_halt(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        self.engine.halt(who.user, " ".join(words) or None)
        return Reply("Baton halted", [section(mrkdwn(
            ":octagonal_sign: Halted: no new runs and no actions until `/baton resume`."))]), None

    def cmd_resume(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        held = self.engine.resume(who.user, asked_at=who.now)
        more = f" Continuing {', '.join(held)}." if held else ""
        return Reply("Baton resumed", [section(mrkdwn(f":arrow_forward: Resumed.{esc(more)}"))]), None

    # -- flows / help ------------------------------------------------------------------------
    def cmd_flows(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        flows, errors = self.engine.flows.load_all()
        blocks: list[Block] = [header("Flows")]
        for name, program in sorted(flows.items()):
            blocks.append(section(mrkdwn(f"*{esc(program.flow.title or name)}* `{esc(name)}`\n"
                                         f"`/baton {esc(usage(program.flow))}`")))
        if errors:
            # each invalid file and its first problem: what to tell whoever looks after the flows
            shown = [str(error.problems[0]) if error.problems else str(error) for error in errors[:5]]
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            blocks.append(context(mrkdwn(f":warning: *{len(errors)} flow "
                                         f"{'file is' if len(errors) == 1 else 'files are'} invalid "
                                         f"and cannot run*{more}:"), plain("\n".join(shown), 2000)))
        return Reply(f"{len(flows)} flows", blocks), None

    def cmd_help(self, words: list[str], who: Invocation) -> tuple[Reply, None]:
        return help_reply(), None


def _flags(words: list[str], *names: str) -> list[str]:
    """`--name` (an option that takes no value) as `--name=yes`, for `parse`."""
    found = []
    for word in words:
        name, eq, _ = word.removeprefix("--").partition("=")
        if word.startswith("--") and name.lower() in names:
            if eq:
                raise ArgumentError(f"--{name.lower()} takes no value")
            word = f"--{name.lower()}=yes"
        found.append(word)
    return found


def _hint(verb: str) -> str | None:
    """The command's usage, every form of it on one line."""
    forms = [f"`/baton {esc(command)}`" for command, _what in HELP if command.split()[0] == verb]
    return f"Usage: {' or '.join(forms)}" if forms else None
