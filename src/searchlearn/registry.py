"""Named choices: one `Registry` each for tasks, searchers, scorers, learners and reward-model kinds.

A config or a command line names a choice; the registry maps the name to its entry, and an unknown name is a
`ConfigError` that lists the valid ones. The CLI's choices, the loop's config checks and the sweep all read the same
table, so adding a choice is one new file plus one line in its registry (README: "Adding a learner, searcher or
scorer"):

    SEARCHERS.register("greedy", SearcherSpec(greedy_search, GreedyConfig, tree=False))
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from searchlearn.config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name → entry table for one kind of choice (`what`: "searcher", "learner", ...)."""

    def __init__(self, what: str, entries: dict[str, T] | None = None):
        self.what = what
        self._entries: dict[str, T] = {}
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Add `entry` under `name` (a second entry under one name is an error unless `replace`)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.what} {name!r}; valid {self.what}s: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return self._entries.items()

    def names(self) -> list[str]:
        """The registered names, sorted (what error messages and `--help` list)."""
        return sorted(self._entries)
