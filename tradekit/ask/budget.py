"""Fitting the context into the model's window: sections by priority, a token estimate, and a
first line that says what was cut.

The estimate is deliberately pessimistic, so that a context it passes also fits a real
tokenizer: every run of up to 4 letters, every run of up to 3 digits, every other symbol and
every line break counts as one token (BPE tokenizers give a common word, 3 digits or ``. `` a
token each). Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z]{1,4}|\d{1,3}|\n|[^\sA-Za-z\d]")
PINNED = 85  # sections at or above this priority (status, equity, verdict) are never dropped


def estimate_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass
class Section:
    """A block of context. ``items`` are droppable lines, oldest first; ``priority`` orders
    what goes first when the text is over budget (lowest first)."""

    name: str
    priority: int
    lines: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    dropped: int = 0

    @property
    def title(self) -> str:
        return self.name.split(" (")[0]

    def render(self) -> str:
        if not self.lines and not self.items:
            return ""
        head = f"## {self.name}"
        if self.dropped:
            head += f" ({self.dropped} oldest dropped)"
        return "\n".join([head, *self.lines, *self.items]) + "\n"


@dataclass(frozen=True)
class Fitted:
    text: str
    dropped: list[str]  # what was cut, in words ("events", "12 oldest of trades", ...)
    tokens: int  # the estimate of ``text``

    @property
    def truncated(self) -> bool:
        return bool(self.dropped)


def _cost(line: str) -> tuple[int, int]:
    """(tokens, chars) of one line with its line break: the estimate is additive over lines
    (no token spans a line break), so totals can be kept without re-rendering."""
    return estimate_tokens(line) + 1, len(line) + 1


def _render(sections: Sequence[Section]) -> str:
    return "\n".join(r for s in sections if (r := s.render()))


def fit(sections: list[Section], *, max_tokens: int, max_chars: int) -> Fitted:
    """Render ``sections`` in their order within both budgets: the lowest priority loses its
    oldest items first, then goes whole; pinned sections stay (if even they are over, the
    text is cut at the end). The first line then says what went."""
    text = _render(sections)
    tokens = estimate_tokens(text)
    if tokens <= max_tokens and len(text) <= max_chars:
        return Fitted(text, [], tokens)
    # Room for the marker line and the "(N oldest dropped)" notes in the headings.
    t_cap, c_cap = max_tokens - 80, max_chars - 260
    costs = {id(s): [_cost(x) for x in s.items] for s in sections}
    t_total, c_total = tokens, len(text)
    gone: list[str] = []
    for s in sorted(sections, key=lambda s: s.priority):
        if s.priority >= PINNED or (t_total <= t_cap and c_total <= c_cap):
            break
        items = costs[id(s)]
        while s.items and (t_total > t_cap or c_total > c_cap):
            t, c = items.pop(0)
            s.items.pop(0)
            s.dropped += 1
            t_total, c_total = t_total - t, c_total - c
        if t_total > t_cap or c_total > c_cap:
            t, c = _cost(s.render())
            t_total, c_total = t_total - t, c_total - c
            s.lines, s.items = [], []
            gone.append(s.title)
        elif s.dropped:
            gone.append(f"{s.dropped} oldest of {s.title}")
    lines = _render(sections).split("\n")
    t_total = sum(_cost(x)[0] for x in lines)
    c_total = sum(_cost(x)[1] for x in lines)
    if t_total > t_cap or c_total > c_cap:  # pinned sections alone are too big: cut the end
        while lines and (t_total > t_cap or c_total > c_cap):
            t, c = _cost(lines.pop())
            t_total, c_total = t_total - t, c_total - c
        gone.append("the end of status, equity and verdict (the window is too small for them)")
    limits = []
    if tokens > max_tokens:
        limits.append(f"{max_tokens} tokens (the model's window less prompt and answer)")
    if len(text) > max_chars:
        limits.append(f"{max_chars} chars ([ask] max_context_chars)")
    said = ", ".join(gone)
    said = said if len(said) <= 150 else said[:149] + "…"
    marker = f"[context cut to fit {' and '.join(limits)}; dropped: {said}]\n"
    text = marker + "\n".join(lines)
    while lines and (estimate_tokens(text) > max_tokens or len(text) > max_chars):
        lines.pop()  # the marker took more room than kept for it
        text = marker + "\n".join(lines)
    return Fitted(text, gone, estimate_tokens(text))
