"""What a valid draft is, and the judge that checks one.

The reasoner answers in JSON constrained by `draft_schema`: which candidate it recommends,
a one-sentence rationale and the ids it cites. The enums are built from the real candidate
set and evidence (a small model cannot name a configuration or a past run that does not
exist) and the free text has a maxLength (or small models ramble until `max_tokens` and emit
truncated JSON). The configuration's numbers are the candidate's: every generated token
costs ~70 ms on a 2-core CPU, and a 1.5B model that re-types them only adds errors (it
wrote learning_rate=4.59). `complete_draft` fills them in; a draft that does set them (a
larger model, a test, a what-if) is held to the same checks.

The judge has two parts:
- deterministic checks (`run_checks`): the schema, every value inside the search space and
  the user's constraints, pretrained weights available for a frozen/fine-tuned backbone,
  every cited id real, the rationale grounded (every id it names exists, every accuracy it
  quotes is one the evidence shows, every value, comparison and difference it states holds, and it
  speaks of no budget or limit the user did not state), the expected accuracy consistent with the meta-model,
  the draft not clearly worse than the best candidate, and the time budget;
- an LLM-as-judge (`llm_scores`), only when every check passed: it names the one problem
  it sees (a wrong number or id, a vague reason, an unreadable sentence, or none) with a
  short critique; the label becomes scores 1-5 for format, accuracy (grounding) and
  completeness.

The package, by concern (each module private, everything re-exported here):
- `_draft`: the `Draft` model, its JSON schema, completing and parsing an answer;
- `_config`: the configuration a draft stands for, checked against the space and the user;
- `_grounding`: the grounding reader (ids, accuracies, claims a rationale states), `GROUNDING` (the
  rules a rationale's statements are held to) and `unsupported`/`ungrounded`;
- `_facts`: `Facts` (what a rationale is judged against) and `Stated` (what the user stated);
- `_values`, `_settings`, `_arithmetic`, `_trials`, `_stated`: the rules of `GROUNDING` beyond ids and accuracies
  (hyperparameter values, comparisons and signed differences, best trial and epoch, budgets and
  limits), read with `_reading`;
- `_text`: the one-sentence grammar, `tidy_text` and `with_rationale`;
- `_repair`: `trim`, a draft whose rationale is kept up to the clause the grounding check refused;
- `_checks`: `run_checks`, a driver over `CHECKS`, one small function per rule;
- `_llm`: the LLM judge's answer, schema and call;
- `_verdict`: the critique for the reasoner, the checks as JSON and the verdict in words.
"""

from __future__ import annotations

from agent.judge._checks import BATCH_SIZES, CHECKS, Check, DraftCase, Rule, meant, run_checks
from agent.judge._config import base_candidate, merge_config, validate_config, weights_source
from agent.judge._draft import (
    DRAFT_RATIONALE_MAX,
    LLM_FIELDS,
    MAX_CITES,
    Draft,
    complete_draft,
    draft_schema,
    parse_draft,
)
from agent.judge._facts import Facts, Stated, stated_of
from agent.judge._grounding import (
    GROUNDING,
    QUOTE_TOLERANCE,
    Claim,
    compares,
    hedge_measured,
    quoted_accuracies,
    quoted_ids,
    ungrounded,
    unsupported,
)
from agent.judge._llm import (
    CRITIQUE_MAX,
    JUDGE_PROBLEMS,
    NO_CRITIQUE,
    SCORE_NAMES,
    JudgeScores,
    judge_schema,
    llm_scores,
    passes,
)
from agent.judge._repair import dropped, heads, trim, trimmed
from agent.judge._text import one_sentence, tidy_text, with_rationale
from agent.judge._verdict import DEFAULT_MIN_SCORE, checks_as_json, critique_of, finite, short_json, verdict_summary

__all__ = [
    "BATCH_SIZES", "CHECKS", "DEFAULT_MIN_SCORE", "CRITIQUE_MAX", "DRAFT_RATIONALE_MAX", "GROUNDING", "JUDGE_PROBLEMS", "LLM_FIELDS",
    "MAX_CITES", "NO_CRITIQUE", "QUOTE_TOLERANCE", "SCORE_NAMES", "Check", "Claim", "Draft",
    "DraftCase", "Facts", "JudgeScores", "Rule", "Stated", "base_candidate", "checks_as_json", "compares", "complete_draft",
    "critique_of", "draft_schema", "dropped", "finite", "heads", "hedge_measured", "judge_schema", "llm_scores", "meant", "merge_config", "one_sentence",
    "parse_draft", "passes", "quoted_accuracies", "quoted_ids", "run_checks", "short_json",
    "stated_of", "tidy_text", "trim", "trimmed", "ungrounded", "unsupported", "validate_config", "verdict_summary", "weights_source",
    "with_rationale",
]
