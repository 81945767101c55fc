"""The code task's programs: one-line Python functions on a list of small integers, from a grammar the tiny model
can learn.

    def f(x): return R([E for v in x if C])

    E  (the map)        v | v + k | v - k | v * k | v // k | v % k
    C  (the filter)     none | v > k | v < k | v != k | v % 2 == 0 | v % 2 == 1
    R  (the reduction)  none (the list itself) | sum | len | max | min | sorted   (max, min: only without a filter,
                        so that the list is never empty)

A `Program` is that triple as data. `source` writes it as Python, `run` computes what it returns on an input by
interpreting the triple (never by executing text: the model's programs run only in the sandbox, tasks/code.py), and
`near_misses` lists the programs one edit away (another constant, operator, filter or reduction): the wrong first
attempts of the retry traces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

MAPS = {"": (0,), "+": (1, 2, 3, 4, 5), "-": (1, 2, 3), "*": (2, 3, 4), "//": (2, 3), "%": (2, 3, 4)}  # op -> ks
FILTERS = {"": (0,), ">": (1, 2, 3, 4, 5, 6, 7), "<": (2, 3, 4, 5, 6, 7, 8), "!=": tuple(range(10)),
           "even": (0,), "odd": (0,)}
REDUCTIONS = ("", "sum", "len", "max", "min", "sorted")
EMPTY_UNSAFE = ("max", "min")  # reductions that fail on an empty list: never after a filter


@dataclass(frozen=True)
class Program:
    map_op: str = ""  # "" (v itself) or one of MAPS
    map_k: int = 0
    filter_op: str = ""  # "" (keep every v) or one of FILTERS
    filter_k: int = 0
    reduce: str = ""  # "" (the list) or one of REDUCTIONS

    def __post_init__(self) -> None:
        if self.map_op not in MAPS or self.map_k not in MAPS[self.map_op]:
            raise ValueError(f"no map {self.map_op!r} {self.map_k}")
        if self.filter_op not in FILTERS or self.filter_k not in FILTERS[self.filter_op]:
            raise ValueError(f"no filter {self.filter_op!r} {self.filter_k}")
        if self.reduce not in REDUCTIONS or (self.reduce in EMPTY_UNSAFE and self.filter_op):
            raise ValueError(f"no reduction {self.reduce!r} after filter {self.filter_op!r}")

    def source(self) -> str:
        """The one-line Python function, e.g. "def f(x): return sum([v * 2 for v in x if v > 3])"."""
        element = "v" if not self.map_op else f"v {self.map_op} {self.map_k}"
        condition = {"": "", "even": " if v % 2 == 0", "odd": " if v % 2 == 1"}.get(
            self.filter_op, f" if v {self.filter_op} {self.filter_k}")
        body = f"[{element} for v in x{condition}]"
        return f"def f(x): return {self.reduce}({body})" if self.reduce else f"def f(x): return {body}"

    def run(self, x: list[int]) -> list[int] | int:
        """What the function returns on `x`, by interpreting this program (the same value Python computes)."""
        ys = [_map(self.map_op, self.map_k, v) for v in x if _keep(self.filter_op, self.filter_k, v)]
        return ys if not self.reduce else {"sum": sum, "len": len, "max": max, "min": min, "sorted": sorted}[
            self.reduce](ys)


def _map(op: str, k: int, v: int) -> int:
    return {"": v, "+": v + k, "-": v - k, "*": v * k, "//": v // max(k, 1), "%": v % max(k, 1)}[op]


def _keep(op: str, k: int, v: int) -> bool:
    return {"": True, ">": v > k, "<": v < k, "!=": v != k, "even": v % 2 == 0, "odd": v % 2 == 1}[op]


def all_programs() -> list[Program]:
    """Every program of the grammar, in a fixed order."""
    out = []
    for map_op, ks in MAPS.items():
        for map_k in ks:
            for filter_op, fks in FILTERS.items():
                for filter_k in fks:
                    for reduce in REDUCTIONS:
                        if not (reduce in EMPTY_UNSAFE and filter_op):
                            out.append(Program(map_op, map_k, filter_op, filter_k, reduce))
    return out


def random_input(rng: random.Random, lo: int = 2, hi: int = 5) -> list[int]:
    """A list of `lo`..`hi` digits."""
    return [rng.randint(0, 9) for _ in range(rng.randint(lo, hi))]


def near_misses(p: Program) -> list[Program]:
    """The programs one edit away from `p`: another k, another map or filter operator (its first k), another
    reduction, or its filter dropped."""
    out = [replace(p, map_k=k) for k in MAPS[p.map_op] if k != p.map_k]
    out += [replace(p, map_op=op, map_k=ks[0]) for op, ks in MAPS.items() if op != p.map_op]
    out += [replace(p, filter_k=k) for k in FILTERS[p.filter_op] if k != p.filter_k]
    out += [replace(p, filter_op=op, filter_k=ks[0]) for op, ks in FILTERS.items()
            if op != p.filter_op and not (p.reduce in EMPTY_UNSAFE and op)]
    out += [replace(p, reduce=r) for r in REDUCTIONS if r != p.reduce and not (r in EMPTY_UNSAFE and p.filter_op)]
    return out
