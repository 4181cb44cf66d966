"""Which revision of the runner measured a record, and which records a later fix made stale.

A record is a measurement of `tools.train` as it was. When a fix changes what some runs measure
(not only how fast they run), those runs' records describe a runner nobody trains with any more:
they are *stale*. Each such fix bumps `RUNNER_REVISION` and is listed in `FIXES` with the configs
it affects; a record stores the revision that measured it (`Provenance.runner_revision`; records
from before revisions existed read as 1).

What a stale record is worth and what happens to it:
- It stays in the knowledge base until the same run (same run key: dataset, config, seed,
  source) is measured again by the current runner. The sweep queues it again
  (`tools.sweep.pending_items`), and the benchmark cache retrains it (`bench.reference.Runs`).
- Once a current record of that run exists, the stale one is superseded: `current` drops it, so
  the meta-model, retrieval and the reports read only the new measurement, and
  `knowledge.seed_merge` replaces it in the seed.

This module imports only the schema, so a bare GPU machine (knowledge/ and tools/ on the path)
can run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from knowledge.schema import ExperimentRecord, TrainConfig

# Backbones whose BatchNorm layers ship TensorFlow's decay 0.99 (PyTorch momentum 0.01): the
# EfficientNet-Lite port and torchvision's MobileNetV3. The others ship PyTorch's 0.1.
TF_BATCHNORM = frozenset({"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v3_small"})


@dataclass(frozen=True)
class RunnerFix:
    """A change to the runner that changed what the runs it `affects` measure."""

    revision: int  # the first runner revision with the fix
    commit: str  # the commit that made it
    summary: str
    affects: Callable[[TrainConfig], bool]


def _trains_tf_batchnorm(config: TrainConfig) -> bool:
    return config.mode != "frozen" and config.backbone in TF_BATCHNORM


FIXES: tuple[RunnerFix, ...] = (
    RunnerFix(
        revision=2, commit="2e213c0",
        summary="BatchNorm layers that train get momentum 0.1 instead of the 0.01 TF-ported backbones ship: "
                "short fine-tunes and scratch runs of those backbones were evaluated with stale running "
                "statistics (python -m bench.bn_momentum: e.g. a Lite0 full fine-tune 0.725 -> 0.825)",
        affects=_trains_tf_batchnorm,
    ),
)
RUNNER_REVISION = max(f.revision for f in FIXES)


def stale_fixes(config: TrainConfig, revision: int) -> list[RunnerFix]:
    """The fixes made after `revision` that change what a run of `config` measures."""
    return [f for f in FIXES if revision < f.revision and f.affects(config)]


def is_stale(record: ExperimentRecord) -> bool:
    """Whether a later runner fix changed what `record`'s run measures."""
    return bool(stale_fixes(record.config, record.provenance.runner_revision))


def current(records: Iterable[ExperimentRecord]) -> list[ExperimentRecord]:
    """`records` without the stale ones whose run was measured again by a runner they are not stale
    for (same run key), in their order: the measurement a reader should use. A stale record no
    newer run replaces is kept (it is the only measurement of that run there is)."""
    records = list(records)
    stale = [is_stale(r) for r in records]
    fresh = {r.run_key for r, s in zip(records, stale, strict=True) if not s}
    return [r for r, s in zip(records, stale, strict=True) if not (s and r.run_key in fresh)]


__all__ = ["FIXES", "RUNNER_REVISION", "TF_BATCHNORM", "RunnerFix", "current", "is_stale", "stale_fixes"]
