"""The state diagram in docs/lifecycle.md is the one generated from the FSM."""
from pathlib import Path

import pytest

from orders.diagram import state_diagram
from orders.models import OrderState

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["docs/lifecycle.md", "README.md"])
def test_documented_diagram_matches_the_fsm(doc):
    text = (ROOT / doc).read_text()
    begin = text.index("```mermaid\n", text.index("<!-- state-diagram:begin -->")) + len("```mermaid\n")
    end = text.index("```", begin)
    assert text[begin:end] == state_diagram(), "run: python manage.py mm_lifecycle_diagram, paste into docs/lifecycle.md"


def test_every_state_appears_in_the_diagram():
    diagram = state_diagram()
    assert [state for state in OrderState.values if f" {state}" not in diagram] == []
