"""CLI start-up: how long `baton --help`, `baton status R-1` and `baton flows list` take as
processes, start-up included, for this copy of Baton ("after") and for an earlier commit
("before", by default main just before the CLI's imports were made lazy), measured side by
side in the same run: each round runs every command once for each side, so whatever else
the machine is doing weighs on both alike.

    python bench/cli_start.py [--runs 15] [--before REV | --no-before]

or as the `cli` section of `python bench/run.py`. The "before" tree is `git archive REV` of
Baton's packages, put first on PYTHONPATH. Both sides run with warm bytecode caches, as an
installed copy does: written under the work folder (PYTHONPYCACHEPREFIX) by the uncounted round.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: as bench/run.py does
    del sys.path[0]
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import Row, env, fresh, ms

REPO = Path(__file__).resolve().parent.parent
# main before `bot.cli` imported its commands' modules lazily (issue 24, item 11)
BEFORE = "4feb783"
PACKAGES = ("bot", "orchestrator", "gates", "storage")
COMMANDS: dict[str, tuple[str, ...]] = {
    "baton --help": ("--help",),
    "baton status R-1": ("status", "R-1"),
    "baton flows list": ("flows", "list"),
}
TARGET = 0.25  # of the before side's wall time: --help and status R-1 (the target)
TARGETED = ("baton --help", "baton status R-1")


@dataclass
class Side:
    name: str
    code: Path  # first on PYTHONPATH
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    environ: dict[str, str]  # its database, flows and org file

    def median(self, command: str) -> float:
        return statistics.median(self.wall[command]) * 1000

    def median_cpu(self, command: str) -> float:
        return statistics.median(self.cpu[command]) * 1000


def checkout(rev: str, into: Path) -> Path:
    """Baton's packages and the benchmark's flows at `rev`, extracted under `into`."""
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, *PACKAGES, "bench/flows"],
                       stdout=out, check=True, stderr=subprocess.PIPE)
    tree = into / f"baton-{rev}"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def _prepare(workdir: Path) -> Path:
    """A database holding one run, R-1, waiting at its gate."""
    from bench.common import INPUTS, REQUESTER, settings
    from orchestrator.bootstrap import open_engine

    path = fresh(workdir / "cli-start.db")
    engine = open_engine(settings(path))
    engine.start_run("bench-approval", INPUTS, REQUESTER)
    engine.db.dispose()
    return path


def _child_env(environ: dict[str, str], code: Path, cwd: Path) -> dict[str, str]:
    """A child's environment: `code` first on its path, and bytecode caches it may write, as an
    installed copy has them. Without them (PYTHONDONTWRITEBYTECODE, which some machines export)
    every run compiles the "before" tree, and whatever the "after" side changed, from source.
    Both sides keep theirs under the work folder (`cwd`), never in the repository."""
    child = {**environ, "PYTHONPATH": str(code), "PYTHONPYCACHEPREFIX": str(cwd / "pycache")}
    child.pop("PYTHONDONTWRITEBYTECODE", None)
    return child


def _timed(code: Path, args: tuple[str, ...], environ: dict[str, str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "import sys; from bot.cli import main; "
                           "sys.argv[0] = 'baton'; main()", *args],
                          env=_child_env(environ, code, cwd), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"baton {' '.join(args)} ({code}) exited {done.returncode}: {done.stderr[-500:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _prepare_before(tree: Path, workdir: Path) -> dict[str, str]:
    """The older side's configuration: a database of its own schema, made by its own `baton
    run`, holding R-1 at its gate, and the flows and org file of its time (a newer org file's
    `services:`, say, is a key it refuses; a newer schema, a revision it does not know)."""
    from bench.common import INPUTS, REQUESTER

    flows = tree / "bench" / "flows"
    environ = env(fresh(workdir / "cli-start-before.db"), BATON_FLOWS=str(flows),
                  BATON_ORG=str(flows / "org.yaml"))
    values = [f"{key}={value}" for key, value in INPUTS.items()]
    _timed(tree, ("run", "bench-approval", *values, "--as", REQUESTER), environ, workdir)
    return environ


def _which(code: Path, environ: dict[str, str], cwd: Path) -> Path:
    """Where `bot.cli` is imported from with this PYTHONPATH (it must be `code`): the folder
    holding its `bot` package, whether bot.cli is a module (the "before" side) or a package."""
    done = subprocess.run([sys.executable, "-c", "import bot.cli; print(bot.__file__)"],
                          env=_child_env(environ, code, cwd), cwd=cwd, capture_output=True,
                          text=True, check=True)
    return Path(done.stdout.strip()).resolve().parent.parent


def run(workdir: Path, runs: int = 15, before: str | None = BEFORE,
        log=print, commands: tuple[str, ...] = tuple(COMMANDS)) -> dict[str, Side]:  # type: ignore[no-untyped-def]
    """Time each of `commands` `runs` times per side, rounds interleaved; the first round
    warms the page cache and the bytecode caches and is not counted."""
    sides = [Side("after", REPO, {}, {}, env(_prepare(workdir)))]
    if before:
        try:
            tree = checkout(before, workdir)
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"  no before side: git archive {before} failed ({exc})")
        else:
            sides.insert(0, Side(f"before ({before})", tree, {}, {}, _prepare_before(tree, workdir)))
    for side in sides:
        found = _which(side.code, side.environ, workdir)
        if found != side.code.resolve():
            raise RuntimeError(f"{side.name}: bot.cli came from {found}, not {side.code}")
    log(f"  {runs} rounds of {len(commands)} commands x {len(sides)} side(s)")
    for round_ in range(runs + 1):
        for side in sides:
            for name in commands:
                args = COMMANDS[name]
                wall, cpu = _timed(side.code, args, side.environ, workdir)
                if round_:
                    side.wall.setdefault(name, []).append(wall)
                    side.cpu.setdefault(name, []).append(cpu)
    return {side.name.split(" ")[0]: side for side in sides}


def rows(sides: dict[str, Side]) -> list[Row]:
    section = "cli start-up"
    after, before = sides["after"], sides.get("before")
    out = []
    for name in (name for name in COMMANDS if name in after.wall):
        if before is None:
            out.append(Row(section, f"{name}: median wall (cpu)",
                           f"{ms(after.median(name))} ({ms(after.median_cpu(name))})"))
            continue
        share = after.median(name) / before.median(name)
        targeted = name in TARGETED
        out.append(Row(section, f"{name}: median wall before / after (cpu before / after)",
                       f"{ms(before.median(name))} / {ms(after.median(name))} = {share:.0%} "
                       f"({ms(before.median_cpu(name))} / {ms(after.median_cpu(name))})",
                       f"<= {TARGET:.0%}" if targeted else "",
                       share <= TARGET if targeted else None))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command per side")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--no-before", action="store_true", help="time this copy only")
    args = parser.parse_args(argv)
    from bench.common import quiet_logs, table

    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="baton-cli-") as tmp:
        print(f"CLI start-up, load average {os.getloadavg()[0]:.2f}")
        sides = run(Path(tmp), args.runs, None if args.no_before else args.before)
    print(table(rows(sides)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
