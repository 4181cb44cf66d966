"""Taking a configuration away: the offered or recommended configuration as JSON, YAML, the
`metallmix train` command and a Python snippet, each a code block (the chat gives each a copy button).

Everything shown is real: the CLI's `train --config` takes the JSON string as printed (agent.cli),
and the snippet calls what that command calls (tools.jobs.Job.start, then Job.wait), recording
the run in the knowledge base the same way.
"""

from __future__ import annotations

import json
import pprint
import shlex
from pathlib import Path
from typing import Any

PLACEHOLDER = "PATH/TO/DATASET.npz"


def cli_command(config: dict[str, Any], dataset: str | None) -> str:
    """The shell command that trains `config` on `dataset` (a placeholder path when none is known)."""
    return (f"metallmix train --dataset {shlex.quote(str(dataset or PLACEHOLDER))} "
            f"--config {shlex.quote(json.dumps(config, separators=(',', ':')))} --yes")


def python_snippet(config: dict[str, Any], dataset: str | None) -> str:
    """Python that trains `config` on `dataset` as `metallmix train` does, and prints the outcome."""
    literal = pprint.pformat(dict(config), sort_dicts=False, width=96)
    return "\n".join([
        "from knowledge.schema import TrainConfig",
        "from knowledge.store import open_default",
        "from tools.jobs import Job",
        "",
        f"config = TrainConfig.model_validate({literal})",
        "kb = open_default(index=False)  # the run is recorded here, as `metallmix train` records it",
        f"job = Job.start({str(dataset or PLACEHOLDER)!r}, config, kb_root=kb.root)",
        "record = job.wait(progress=True)  # None when the worker died before loading the data",
        "print(record.outcome.status, record.outcome.test_accuracy) if record else print(job.run_dir)",
    ])


def yaml_text(config: dict[str, Any]) -> str | None:
    """The configuration as YAML, or None when PyYAML is not installed (it comes with LangChain)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - a dependency of langchain-core
        return None
    return str(yaml.safe_dump(dict(config), sort_keys=False)).rstrip()


def export_md(config: dict[str, Any], dataset: str | None) -> tuple[str, str]:
    """The title and text of the collapsible "take it away" block for one configuration."""
    parts = ["JSON (what `metallmix train --config` takes, as a string or a file):",
             "```json\n" + json.dumps(config, indent=2) + "\n```"]
    if (yaml := yaml_text(config)) is not None:
        parts += ["YAML:", "```yaml\n" + yaml + "\n```"]
    note = "" if dataset else f" (replace `{PLACEHOLDER}` with your dataset)"
    parts += [f"Command line{note}:", "```bash\n" + cli_command(config, dataset) + "\n```",
              "Python, from the project folder:", "```python\n" + python_snippet(config, dataset) + "\n```"]
    where = f" on {Path(str(dataset)).name}" if dataset else ""
    return f"Take this configuration away{where}: JSON, YAML, command line, Python", "\n\n".join(parts)


__all__ = ["PLACEHOLDER", "cli_command", "export_md", "python_snippet", "yaml_text"]
