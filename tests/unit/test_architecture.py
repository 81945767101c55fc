"""The package's shape holds: no import circle (lazy imports included), no module over 400 lines, and packages
layered one way (sandbox < env < policy < distributed < learn < reward < search < report < loop < recipes < cli)."""

import ast
from pathlib import Path

import searchlearn

ROOT = Path(searchlearn.__file__).parent
LAYERS = ["sandbox", "env", "policy", "distributed", "learn", "reward", "search", "report", "loop", "recipes", "cli"]


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict) -> set[str]:
    """Every searchlearn module `path` imports, at the top or inside a function or a TYPE_CHECKING block."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("searchlearn"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("searchlearn")}
    return {m for m in found if m in known}


def test_no_import_circle():
    known = modules()
    graph = {m: imports(p, known) for m, p in known.items()}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            assert state.get(n) != 1, f"import circle: {' -> '.join(stack[stack.index(n):] + [m, n])}"
            if n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in known:
        if m not in state:
            visit(m, [])


def test_packages_import_only_downwards():
    known = modules()
    for m, path in known.items():
        parts = m.split(".")
        if len(parts) < 3 or parts[1] not in LAYERS:
            continue
        for n in imports(path, known):
            other = n.split(".")
            if len(other) >= 3 and other[1] in LAYERS:
                assert LAYERS.index(other[1]) <= LAYERS.index(parts[1]), f"{m} imports {n}: an upward import"


def test_no_module_over_400_lines():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_contracts_are_protocols_the_loop_uses():
    from typing import Protocol

    from searchlearn import contracts

    for name in ("Task", "Policy", "TrainablePolicy", "OutcomeReward", "ProcessReward", "Searcher"):
        assert Protocol in getattr(contracts, name).__mro__, name
    rounds = (ROOT / "loop" / "rounds.py").read_text()
    assert "LocalPolicy" not in rounds and "CountdownTask" not in rounds
