"""CPU time of processes, from /proc/<pid>/stat (Linux), for the benchmarks' per-process split.

A sample reads each named source's user + system time in seconds; two samples around a phase
give the CPU each process spent in it. A source is either one process on its own (`tree=False`:
its threads, not its children; the bench process itself, whose children are the stack) or a
process tree (`tree=True`: the process and all its live descendants, each with the time of the
children it has reaped, so that PostgreSQL's backends count whether they are still running or
have exited and been reaped by the postmaster: a backend's time moves from its own line to the
postmaster's cutime/cstime when it is reaped, and the sum stays the same).

A pid that is unknown (`None`, e.g. a stack the bench did not start) or gone reads as `None`.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def clock_ticks() -> int:
    """Clock ticks per second, the unit of the times in /proc/<pid>/stat."""
    return os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the split needs (times in clock ticks)."""

    pid: int
    comm: str
    ppid: int
    utime: int
    stime: int
    cutime: int  # of the children it has waited for (and theirs): exited and reaped
    cstime: int

    @property
    def own(self) -> int:
        return self.utime + self.stime

    @property
    def with_reaped_children(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name is in parentheses and may itself hold spaces
    and parentheses, so the fields are counted from the last ')'."""
    open_paren, close_paren = text.index("("), text.rindex(")")
    pid = int(text[:open_paren])
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3] (proc(5)).
    return ProcStat(
        pid=pid,
        comm=text[open_paren + 1 : close_paren],
        ppid=int(rest[4 - 3]),
        utime=int(rest[14 - 3]),
        stime=int(rest[15 - 3]),
        cutime=int(rest[16 - 3]),
        cstime=int(rest[17 - 3]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None  # gone (or going) meanwhile


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def tree_ticks(root: int, stats: Mapping[int, ProcStat]) -> int | None:
    """Ticks of `root` and its live descendants, each with its reaped children's; None if the
    root is not running."""
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total, todo, seen = 0, [root], set[int]()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats[pid].with_reaped_children
        todo.extend(children.get(pid, ()))
    return total


@dataclass(frozen=True)
class Source:
    pid: int | None
    tree: bool = True  # False: that process alone (its threads, not its children)


def sample(sources: Mapping[str, Source], proc: Path = PROC) -> dict[str, float | None]:
    """CPU seconds (user + system) so far of each source; None where its pid is unknown or gone."""
    stats = all_stats(proc) if any(s.tree and s.pid is not None for s in sources.values()) else {}
    ticks = clock_ticks()
    seconds: dict[str, float | None] = {}
    for name, source in sources.items():
        ticks_spent: int | None = None
        if source.pid is not None and source.tree:
            ticks_spent = tree_ticks(source.pid, stats)
        elif source.pid is not None:
            own = read_stat(source.pid, proc)
            ticks_spent = own.own if own is not None else None
        seconds[name] = ticks_spent / ticks if ticks_spent is not None else None
    return seconds


def spent(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, float | None]:
    """CPU seconds each source spent between two samples (None unless both have it)."""
    delta: dict[str, float | None] = {}
    for name, was in before.items():
        now = after.get(name)
        delta[name] = now - was if was is not None and now is not None else None
    return delta
