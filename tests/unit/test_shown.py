"""Values made fit to show (`workers.core.shown`): control characters escaped visibly, long values
clipped with how much was left out, and never a part of a phone number let out by the cut."""

from __future__ import annotations

import pytest

from workers.core.shown import fit, inert, inert_lines, listed, shown

ESCAPED = [
    ("evil\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED", r"evil\n2026-12-07 03:00:00,000 ERROR"),
    ("a\rb", r"a\rb"),
    ("a\tb", r"a\tb"),
    ("\x1b[2J", r"\x1b[2J"),  # clear the screen
    ("\x1b]0;title\x07", r"\x1b]0;title\x07"),  # retitle the terminal
    ("\x00\x08\x7f", r"\x00\x08\x7f"),
    ("\x85\x9b", r"\x85\x9b"),  # C1: NEL, CSI
    ("a\u2028b\u2029c", r"a\u2028b\u2029c"),  # line and paragraph separators
    ("bidi\u202eevil\u202c", r"bidi\u202eevil\u202c"),  # right-to-left override, pop
    ("\u2066\u2067\u2068\u2069\u200e\u200f\u061c", r"\u2066\u2067\u2068\u2069\u200e\u200f\u061c"),
]

PLAIN = ["call-42", "Zoë's room · 会议室 🎉", r"back\slash", "", "a b", "[bold]x[/bold]", "<b>x</b>"]


@pytest.mark.parametrize(("raw", "escaped"), ESCAPED)
def test_control_characters_are_escaped_visibly(raw: str, escaped: str) -> None:
    assert inert(raw).startswith(escaped)
    assert inert(inert(raw)) == inert(raw)  # escaping twice changes nothing
    assert inert(raw).isprintable()


@pytest.mark.parametrize("text", PLAIN)
def test_printable_text_is_left_alone(text: str) -> None:
    assert inert(text) == text


def test_inert_lines_keeps_the_lines_and_escapes_the_rest() -> None:
    lines = inert_lines("Traceback\n  File x\x1b[2J\r\nValueError")
    assert lines == "Traceback\n  File x\\x1b[2J\\r\nValueError"


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [
        ("x" * 10, 10, "x" * 10),
        ("x" * 11, 10, "x" * 10 + "…(1 more chars)"),
        ("x" * 1_000_000, 200, "x" * 200 + "…(999800 more chars)"),
        ("room call-15550100123", 15, "room call…(12 more chars)"),  # never cut in a number: before it
        ("room +1 555 010 0123 end", 12, "room…(20 more chars)"),
        ("room call-15550100123 end", 22, "room call-•••0123 …(3 more chars)"),  # cut after: masked
        ("room call-15550100123 end", 25, "room call-•••0123 end"),
        ("sip_+15550100" + "z" * 300, 20, "sip_•••0100zzzzzzz…(293 more chars)"),
        ("agent-12345678901", 10, "agent…(12 more chars)"),  # no phone word, still never cut in digits
    ],
)
def test_fit_masks_and_clips_never_inside_a_number(text: str, limit: int, clipped: str) -> None:
    assert fit(text, limit) == clipped


def test_ids_are_clipped_unmasked_and_shown_inert() -> None:
    assert fit("call-15550100", mask=False) == "call-15550100"
    assert shown("evil\n" + "x" * 300) == "evil\\n" + "x" * 195 + "…(105 more chars)"


def test_a_long_list_shows_its_first_names_and_how_many_more() -> None:
    assert listed(["a", "b\x1b"]) == "a, b\\x1b"
    assert listed([f"p{n}" for n in range(12)]) == "p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 and 2 more"
    assert listed([]) == ""
