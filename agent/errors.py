"""The errors every layer of agent/ raises, and the exit codes the CLI maps them to.

A leaf module (it imports nothing of the project), so the CLI, its commands, the nodes,
the recommendation API and the tuner share one definition of each without importing one
another.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENV, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """Bad input from the user: exit code 2 with the message."""


class TaskError(ValueError):
    """The request cannot be served as given; the message says what to change."""


class OutOfScope(TaskError):
    """The text asks for no image-classification set-up (or too little to act on); the message
    says what the tool does and what to type. Nothing is recommended and nothing trains."""


class TrainingNotApproved(PermissionError):
    """The train node was reached without an approval of the exact configuration."""


__all__ = ["EXIT_ENV", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "OutOfScope", "TaskError",
           "TrainingNotApproved", "UsageError"]
