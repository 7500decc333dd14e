"""The kinds of A/B vote, declared once: the buttons, the stored values, the scoring and the counts follow.

A kind is what one vote button means. A *side* kind ("left better") credits the reply shown on that
side; it is stored as the panel ("A" or "B") that was shown there, so a blind swap never reaches the
ratings. A *shared* kind ("tie", "both bad") gives each reply the same points and is stored by its own
name. Adding a kind is one line in :data:`VOTE_KINDS`::

    for kind in VOTE_KINDS:
        gr.Button(kind.label)                     # the button, in this order
    winner = stored_winner("left", swapped=True)  # "B"
    points("B")                                   # (0.0, 1.0): points of A and B
"""

from __future__ import annotations

from dataclasses import dataclass

PANELS = ("A", "B")
SCREEN_SIDES = ("left", "right")


@dataclass(frozen=True)
class VoteKind:
    """One vote button and everything that follows from pressing it."""

    choice: str  # what the button sends ("left", "right", "tie", ...); shared kinds are stored under it
    label: str  # the button's text
    left_points: float  # points of the reply shown on the left; the right one gets 1 - left_points
    column: str = ""  # a leaderboard column counting this kind on its own ("" = only in W-L-T)

    @property
    def side(self) -> str | None:
        """The screen side this kind credits, or None when both replies get the same points."""
        if self.left_points == 0.5:
            return None
        return "left" if self.left_points > 0.5 else "right"


# Ties and "both bad" count half for each side, as Chatbot Arena does; "both bad" is also counted on
# its own, because two bad replies say something about both settings that a tie does not.
VOTE_KINDS: tuple[VoteKind, ...] = (
    VoteKind("left", "← Left better", 1.0),
    VoteKind("tie", "Tie", 0.5),
    VoteKind("both-bad", "Both bad", 0.5, column="both bad"),
    VoteKind("right", "Right better →", 0.0),
)
KINDS_BY_CHOICE = {kind.choice: kind for kind in VOTE_KINDS}
SHARED_KINDS = tuple(kind for kind in VOTE_KINDS if kind.side is None)
# every value the votes table holds in ``winner``: a panel, or a shared kind's name
WINNERS = (*PANELS, *(kind.choice for kind in SHARED_KINDS))


def panel_on(side: str, swapped: bool) -> str:
    """The panel ("A"/"B") shown on screen side "left"/"right"; ``swapped``: blind mode put B on the left."""
    if side not in SCREEN_SIDES:
        raise ValueError(f"screen side must be left or right (got {side!r})")
    return ("B" if swapped else "A") if side == "left" else ("A" if swapped else "B")


def stored_winner(choice: str, swapped: bool) -> str:
    """The value a button press is stored as: the panel it credits, or the shared kind's name."""
    kind = KINDS_BY_CHOICE.get(choice)
    if kind is None:
        raise ValueError(f"unknown vote {choice!r}; expected one of {', '.join(KINDS_BY_CHOICE)}")
    return kind.choice if kind.side is None else panel_on(kind.side, swapped)


def points(winner: str) -> tuple[float, float]:
    """Points of (A, B) for a stored winner: 1/0, 0/1, or a shared kind's points for each."""
    if winner in PANELS:
        return (1.0, 0.0) if winner == "A" else (0.0, 1.0)
    kind = KINDS_BY_CHOICE.get(winner)
    if kind is None or kind.side is not None:
        raise ValueError(f"unknown winner {winner!r}; expected one of {', '.join(WINNERS)}")
    return kind.left_points, 1.0 - kind.left_points


def outcome_for(winner: str, panel: str) -> str:
    """The vote from one panel's point of view: "win", "loss", or the shared kind's name."""
    if winner in PANELS:
        return "win" if winner == panel else "loss"
    points(winner)  # refuses an unknown value
    return winner
