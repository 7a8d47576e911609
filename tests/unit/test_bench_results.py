"""``make bench`` and ``python -m bench --only ...`` rewrite only the sections they ran."""

from __future__ import annotations

from bench.__main__ import HEADER, merge
from bench.harness import Result

OLD = HEADER + "\n## A\n\n*Run then.*\n\nold a\n\n## B\n\n*Run then.*\n\nold b\n"


def test_a_rerun_section_is_replaced_in_place_and_the_others_are_kept() -> None:
    out = merge(OLD, [Result("A", "new a")], "*Run now.*")
    assert out == HEADER + "\n## A\n\n*Run now.*\n\nnew a\n\n## B\n\n*Run then.*\n\nold b\n"


def test_a_new_section_is_appended_and_a_first_run_starts_the_file() -> None:
    out = merge(OLD, [Result("C", "c")], "*Run now.*")
    assert out.endswith("old b\n\n## C\n\n*Run now.*\n\nc\n")
    assert merge("", [Result("A", "a")], "*Run now.*") == HEADER + "\n## A\n\n*Run now.*\n\na\n"
