"""The smoke checklist: each item pass, fail or skip, with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "skip"]
MARKS = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]SKIP[/]"}


@dataclass
class Item:
    """One checked promise of the train-to-serve contract."""

    name: str
    status: Status
    reason: str


@dataclass
class Checklist:
    """The items in the order they were checked, and what the smoke changed in the recipe."""

    family: str
    changes: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)

    def check(self, name: str, ok: bool, reason: str) -> bool:
        """Record a pass or a fail; returns ok."""
        self.items.append(Item(name, "pass" if ok else "fail", reason))
        return ok

    def skip(self, name: str, reason: str) -> None:
        """Record an item that does not apply to this recipe."""
        self.items.append(Item(name, "skip", reason))

    @property
    def passed(self) -> bool:
        """Every item passed or does not apply."""
        return all(i.status != "fail" for i in self.items)

    def to_dict(self) -> dict:
        """The checklist as written to RUN/smoke.json."""
        return {
            "family": self.family,
            "passed": self.passed,
            "changes": self.changes,
            "items": [asdict(i) for i in self.items],
        }

    def render(self, console) -> None:
        """One line per item."""
        for item in self.items:
            console.print(f"{MARKS[item.status]} {item.name}: ", end="")
            console.print(item.reason, markup=False, highlight=False)
