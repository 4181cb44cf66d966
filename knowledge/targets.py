"""What the seed knowledge base should hold (issue 14), with nothing heavy to import: the CLI builds
its `--to-targets` help from these at start-up, where importing `knowledge.store` would cost 0.18 s.

Of every dataset, `TARGETS` runs of each kind (`knowledge.store.coverage_kind`: fine-tunes of a
pretrained backbone, full or partial, and scratch runs configured for 15 epochs or more); and of all
its successful runs, `TARGET_SHARE` of fine-tunes. Counted by `knowledge.store.training_coverage`;
`tools.sweep --to-targets` plans the runs that are missing.
"""

from __future__ import annotations

import math

TARGETS = {"finetune": 20, "scratch_15": 10}
TARGET_SHARE = 0.25


def finetunes_to_share(finetunes: int, runs: int, share: float = TARGET_SHARE) -> int:
    """How many more fine-tunes make `finetunes` of `runs` successful runs at least `share` of them
    (each new one a run too: f + x >= share * (n + x))."""
    return max(0, math.ceil((share * runs - finetunes) / (1 - share) - 1e-9))


# argparse help text (a literal % is written %%).
TO_TARGETS_HELP = (f"cpu/gpu plans: only the runs that bring each dataset to {TARGETS['finetune']} fine-tunes and "
                   f"{TARGETS['scratch_15']} scratch runs of 15+ epochs, the dataset that costs least to complete "
                   f"first, then fine-tunes until they are {TARGET_SHARE:.0%}% of the successful runs, every "
                   "dataset's cheapest in turn; counting what the knowledge base has")
