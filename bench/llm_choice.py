"""Which embedded GGUF model should be the default? Measure it on the real task.

For each candidate model, six varied recommendation requests are answered the way the graph
answers them: a *reasoner* call (schema-constrained JSON: backbone, mode, learning rate,
batch size, epochs, rationale, cited runs) followed by a *judge* call (schema-constrained
verdict). The context is what the graph feeds the model: dataset meta-features, five
meta-model candidates with predicted accuracy and time, SHAP drivers, three retrieved runs.

Printed: per model, reasoner latency (mean, p95), the whole recommendation (reasoner +
judge, p50, p95), prompt and generation speed, % valid JSON, % answers equal to one of the
candidate configs, % sane values, and a sample rationale; then how prompt length drives
latency (a sweep over context size), and what sharing the prompt prefix between reasoner
and judge saves (llama.cpp reuses the KV cache of a common prefix).

Usage:
    python -m bench.llm_choice [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b] [--threads N]

Timings are wall-clock on whatever else the machine is doing; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.llm import EMBEDDED_MODELS, _load_llama, ensure_gguf

MODES = ["frozen", "finetune", "scratch"]

SYSTEM = (
    "You are MetaLLMiX, an assistant that recommends a pretrained backbone and "
    "hyperparameters for a medical-image classification task without running trials. "
    "Use only the evidence given: the meta-model's candidate configurations with predicted "
    "test accuracy and training time, the SHAP drivers, and similar past runs. Prefer high "
    "predicted accuracy, break near-ties by shorter time, respect the user's constraints. "
    "Cite the past runs you rely on by id. Answer with JSON only."
)
# --compact: the same rules in fewer tokens, and a shorter rationale (prompt and answer
# length are what the latency is made of).
SYSTEM_COMPACT = (
    "Recommend one training config for the medical-imaging task from the evidence only. Prefer "
    "high predicted acc, then shorter time; respect user constraints; cite run ids. JSON only."
)
JUDGE_SYSTEM = (
    "You are a strict reviewer of hyperparameter recommendations. Check the recommendation "
    "against the evidence: is it well-formed, grounded in the candidates and cited runs, and "
    "complete? Answer with JSON only."
)
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "format_ok": {"type": "boolean"},
        "grounded": {"type": "boolean"},
        "complete": {"type": "boolean"},
        "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        "critique": {"type": "string", "maxLength": 200},
    },
    "required": ["format_ok", "grounded", "complete", "score", "critique"],
}


@dataclass
class Scenario:
    """One recommendation request: task, meta-model candidates, SHAP, retrieved runs."""

    task: str
    meta: str
    candidates: list[tuple[str, str, float, int, int, float, int]]  # bb, mode, lr, bs, ep, acc, s
    shap: str
    runs: list[tuple[str, str, str, float, int]]  # id, dataset, config, test acc, seconds
    ask: str = "Recommend one configuration."

    def schema(self, rationale_max: int = 400) -> dict[str, Any]:
        """The reasoner's output schema, with enums drawn from this context."""
        return {
            "type": "object",
            "properties": {
                "backbone": {"type": "string", "enum": sorted({c[0] for c in self.candidates})},
                "mode": {"type": "string", "enum": MODES},
                "learning_rate": {"type": "number"},
                "batch_size": {"type": "integer"},
                "epochs": {"type": "integer"},
                "rationale": {"type": "string", "maxLength": rationale_max},
                "cited_runs": {  # without maxItems small models repeat ids until max_tokens
                    "type": "array",
                    "items": {"type": "string", "enum": [r[0] for r in self.runs]},
                    "maxItems": 3,
                },
            },
            "required": ["backbone", "mode", "learning_rate", "batch_size", "epochs", "rationale", "cited_runs"],
        }

    def context(self, n_runs: int | None = None, extra_runs: int = 0) -> str:
        """The evidence block, optionally with fewer or padded retrieved runs (for the sweep)."""
        lines = [
            f"Task: {self.task}",
            f"Dataset: {self.meta}",
            "Meta-model candidates (predicted test acc, train time):",
        ]
        for i, (bb, mode, lr, bs, ep, acc, sec) in enumerate(self.candidates, 1):
            lines.append(f"c{i} {bb} {mode} lr={lr:g} bs={bs} ep={ep}: acc {acc:.2f}, {sec} s")
        lines.append(f"SHAP drivers: {self.shap}")
        lines.append("Similar past runs:")
        runs = self.runs[: n_runs if n_runs is not None else len(self.runs)]
        runs = runs + [
            (
                f"x{i}",
                "derma_mnist (dermoscopy, 7 cls, 7007 imgs, 64px)",
                "resnet18 scratch lr=0.01 bs=128 ep=40",
                0.71,
                900,
            )
            for i in range(extra_runs)
        ]
        for rid, ds, cfg, acc, sec in runs:
            lines.append(f"{rid} {ds}: {cfg} -> test acc {acc:.2f}, {sec} s")
        lines.append(self.ask)
        return "\n".join(lines)


SCENARIOS = [
    Scenario(
        task="skin lesion classification from dermoscopy photos",
        meta="dermoscopy, 8 classes, 2000 images, 64px RGB, imbalance 9.5, class entropy 0.71",
        candidates=[
            ("efficientnet_lite0", "frozen", 1e-3, 64, 30, 0.74, 45),
            ("efficientnet_lite2", "frozen", 1e-3, 64, 30, 0.76, 140),
            ("resnet18", "finetune", 3e-4, 32, 15, 0.73, 610),
            ("resnet18", "scratch", 1e-2, 128, 60, 0.62, 900),
            ("efficientnet_lite1", "frozen", 3e-3, 128, 20, 0.75, 80),
        ],
        shap="mode=frozen +0.05; n_images=2000 -0.04 for scratch; imbalance 9.5 -0.03; lr>0.005 -0.02",
        runs=[
            (
                "r12",
                "derma_mnist (dermoscopy, 7 cls, 7007 imgs, 64px)",
                "efficientnet_lite0 frozen lr=0.001 bs=64 ep=30",
                0.75,
                52,
            ),
            (
                "r31",
                "derma_mnist (dermoscopy, 7 cls, 7007 imgs, 64px)",
                "resnet18 scratch lr=0.01 bs=128 ep=40",
                0.71,
                930,
            ),
            (
                "r07",
                "isic_subset (dermoscopy, 8 cls, 2500 imgs, 64px)",
                "efficientnet_lite2 frozen lr=0.001 bs=64 ep=30",
                0.77,
                160,
            ),
        ],
    ),
    Scenario(
        task="pneumonia vs normal on chest X-rays",
        meta="chest X-ray, 2 classes, 5216 images, 64px grayscale, imbalance 2.9, class entropy 0.83",
        candidates=[
            ("resnet18", "scratch", 1e-3, 128, 20, 0.86, 820),
            ("efficientnet_lite0", "frozen", 1e-3, 128, 30, 0.84, 70),
            ("efficientnet_lite0", "finetune", 1e-4, 64, 10, 0.88, 540),
            ("mobilenet_v3_small", "finetune", 3e-4, 64, 15, 0.85, 300),
            ("efficientnet_lite1", "frozen", 1e-3, 128, 30, 0.85, 110),
        ],
        shap="mode=finetune +0.03; n_classes=2 +0.06; grayscale -0.02 for frozen; epochs>15 +0.01",
        runs=[
            (
                "r44",
                "pneumonia_mnist (chest X-ray, 2 cls, 4708 imgs, 28px)",
                "resnet18 scratch lr=0.001 bs=128 ep=20",
                0.85,
                400,
            ),
            (
                "r45",
                "pneumonia_mnist (chest X-ray, 2 cls, 4708 imgs, 28px)",
                "efficientnet_lite0 frozen lr=0.001 bs=128 ep=30",
                0.83,
                60,
            ),
            (
                "r52",
                "chest_xray_kermany (chest X-ray, 2 cls, 5216 imgs, 64px)",
                "efficientnet_lite0 finetune lr=0.0001 bs=64 ep=10",
                0.87,
                560,
            ),
        ],
        ask="I have about 2 minutes of CPU time for training. Recommend one configuration.",
    ),
    Scenario(
        task="brain tumour type from MRI slices",
        meta="brain MRI, 4 classes, 2870 images, 64px grayscale, imbalance 1.6, class entropy 0.98",
        candidates=[
            ("efficientnet_lite0", "frozen", 3e-3, 64, 40, 0.78, 55),
            ("resnet18", "finetune", 3e-4, 32, 20, 0.86, 700),
            ("efficientnet_lite2", "finetune", 1e-4, 32, 10, 0.88, 1500),
            ("resnet18", "scratch", 1e-3, 64, 60, 0.80, 1100),
            ("efficientnet_lite1", "frozen", 1e-3, 64, 40, 0.80, 90),
        ],
        shap="mode=finetune +0.07; resolution 64 -0.02 for lite2; class entropy 0.98 +0.02",
        runs=[
            (
                "r03",
                "brain_tumor_mri (MRI, 4 cls, 2870 imgs, 64px)",
                "efficientnet_lite0 frozen lr=0.003 bs=64 ep=40",
                0.77,
                58,
            ),
            (
                "r18",
                "brain_tumor_mri (MRI, 4 cls, 2870 imgs, 64px)",
                "resnet18 finetune lr=0.0003 bs=32 ep=20",
                0.87,
                720,
            ),
            (
                "r22",
                "alzheimer_mri (MRI, 4 cls, 5120 imgs, 64px)",
                "resnet18 finetune lr=0.0003 bs=32 ep=20",
                0.52,
                1300,
            ),
        ],
        ask="Accuracy matters most; training time up to 30 minutes is fine. Recommend one configuration.",
    ),
    Scenario(
        task="blood cell type classification from microscope images",
        meta="blood smear microscopy, 8 classes, 11959 images, 64px RGB, imbalance 2.8, class entropy 0.96",
        candidates=[
            ("efficientnet_lite0", "frozen", 1e-3, 256, 20, 0.91, 160),
            ("efficientnet_lite1", "frozen", 1e-3, 256, 20, 0.92, 250),
            ("resnet18", "scratch", 1e-3, 128, 30, 0.95, 2400),
            ("mobilenet_v3_small", "finetune", 1e-3, 128, 10, 0.94, 900),
            ("efficientnet_lite0", "finetune", 3e-4, 128, 8, 0.96, 1400),
        ],
        shap="n_images=11959 +0.04 for scratch; mode=finetune +0.03; bs=256 +0.01 speed",
        runs=[
            (
                "r60",
                "blood_mnist (microscopy, 8 cls, 11959 imgs, 28px)",
                "resnet18 scratch lr=0.001 bs=128 ep=30",
                0.95,
                1900,
            ),
            (
                "r61",
                "blood_mnist (microscopy, 8 cls, 11959 imgs, 28px)",
                "efficientnet_lite0 frozen lr=0.001 bs=256 ep=20",
                0.90,
                150,
            ),
            (
                "r66",
                "blood_mnist (microscopy, 8 cls, 11959 imgs, 64px)",
                "efficientnet_lite0 finetune lr=0.0003 bs=128 ep=8",
                0.96,
                1450,
            ),
        ],
    ),
    Scenario(
        task="knee osteoarthritis severity (Kellgren-Lawrence grade) from X-rays",
        meta="knee X-ray, 5 classes, 5778 images, 64px grayscale, imbalance 8.1, class entropy 0.86",
        candidates=[
            ("resnet18", "finetune", 1e-4, 32, 20, 0.55, 1300),
            ("efficientnet_lite0", "frozen", 1e-3, 128, 30, 0.45, 80),
            ("efficientnet_lite1", "finetune", 1e-4, 32, 15, 0.58, 2100),
            ("resnet18", "scratch", 3e-3, 128, 50, 0.50, 1800),
            ("efficientnet_lite2", "frozen", 1e-3, 128, 30, 0.47, 260),
        ],
        shap="modality=knee X-ray -0.12 (hard at 64px); mode=finetune +0.08; imbalance 8.1 -0.04",
        runs=[
            (
                "r71",
                "knee_oa_xray (X-ray, 5 cls, 5778 imgs, 64px)",
                "resnet18 finetune lr=0.0001 bs=32 ep=20",
                0.56,
                1350,
            ),
            (
                "r72",
                "knee_oa_xray (X-ray, 5 cls, 5778 imgs, 64px)",
                "efficientnet_lite0 frozen lr=0.001 bs=128 ep=30",
                0.44,
                85,
            ),
            (
                "r09",
                "oa_kaggle (X-ray, 5 cls, 8260 imgs, 128px)",
                "efficientnet_lite1 finetune lr=0.0001 bs=32 ep=15",
                0.61,
                3900,
            ),
        ],
        ask="This is for a quick baseline under 5 minutes. Recommend one configuration.",
    ),
    Scenario(
        task="colorectal cancer tissue type from histology patches",
        meta="histopathology, 9 classes, 20000 images, 28px RGB, imbalance 1.9, class entropy 0.99",
        candidates=[
            ("resnet18", "scratch", 1e-3, 256, 15, 0.90, 1100),
            ("efficientnet_lite0", "frozen", 1e-3, 256, 20, 0.88, 210),
            ("mobilenet_v3_small", "scratch", 3e-3, 256, 20, 0.86, 700),
            ("efficientnet_lite0", "finetune", 3e-4, 128, 5, 0.92, 1700),
            ("resnet18", "finetune", 1e-4, 128, 5, 0.91, 1300),
        ],
        shap="n_images=20000 +0.05 scratch; resolution 28 -0.03 pretrained; lr 1e-3 +0.01",
        runs=[
            (
                "r80",
                "path_mnist (histology, 9 cls, 89996 imgs, 28px)",
                "resnet18 scratch lr=0.001 bs=128 ep=15",
                0.91,
                6000,
            ),
            (
                "r81",
                "path_mnist subset (histology, 9 cls, 20000 imgs, 28px)",
                "efficientnet_lite0 frozen lr=0.001 bs=256 ep=20",
                0.87,
                200,
            ),
            (
                "r85",
                "lung_histo_lc25000 (histology, 5 cls, 25000 imgs, 64px)",
                "resnet18 finetune lr=0.0001 bs=128 ep=5",
                0.99,
                1500,
            ),
        ],
    ),
]


@dataclass
class Call:
    """One timed LLM call (perf counters from llama.cpp; ``load`` = 1-min load average)."""

    seconds: float
    prompt_tokens: int
    prompt_seconds: float
    gen_tokens: int
    gen_seconds: float
    text: str
    load: float = 0.0


def call(llama: Any, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int, cold: bool) -> Call:
    """One schema-constrained chat completion, timed; ``cold`` drops the KV-cache prefix."""
    import llama_cpp

    if cold:
        llama.reset()
    llama_cpp.llama_perf_context_reset(llama.ctx)
    t0 = time.perf_counter()
    out = llama.create_chat_completion(
        messages=messages,
        response_format={"type": "json_object", "schema": schema},
        temperature=0.0,
        max_tokens=max_tokens,
        seed=0,
    )
    seconds = time.perf_counter() - t0
    p = llama_cpp.llama_perf_context(llama.ctx)
    text = out["choices"][0]["message"]["content"] or ""
    return Call(seconds, p.n_p_eval, p.t_p_eval_ms / 1e3, p.n_eval, p.t_eval_ms / 1e3, text, os.getloadavg()[0])


def parse(text: str) -> dict[str, Any] | None:
    """A JSON object (complete, not patched up) or None."""
    try:
        obj = json.loads(text, strict=False)  # as agent.llm parses: grammar allows raw newlines
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def grade(text: str, sc: Scenario) -> tuple[bool, bool, bool, bool]:
    """(valid, equals a candidate config, sane values, picks the meta-model's most accurate)."""
    rec = parse(text)
    if rec is None or any(k not in rec for k in sc.schema()["required"]):
        return False, False, False, False
    try:
        cfg = (rec["backbone"], rec["mode"], float(rec["learning_rate"]), int(rec["batch_size"]), int(rec["epochs"]))
    except (TypeError, ValueError):
        return False, False, False, False
    in_cand = any(cfg[:2] == c[:2] and abs(cfg[2] - c[2]) < 1e-12 and cfg[3:] == c[3:5] for c in sc.candidates)
    sane = 1e-5 <= cfg[2] <= 0.1 and 8 <= cfg[3] <= 256 and 1 <= cfg[4] <= 300
    best = max(sc.candidates, key=lambda c: c[5])
    return True, in_cand, sane, cfg[:2] == best[:2]


def measure(name: str, threads: int | None, shared_judge: bool, do_sweep: bool, compact: bool) -> dict[str, Any]:
    """Answer every scenario with reasoner + judge on one model; optionally the length sweep."""
    system, rationale_max = (SYSTEM_COMPACT, 200) if compact else (SYSTEM, 400)
    llama, _ = _load_llama(str(ensure_gguf(name)), 4096, threads)
    ok_schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    call(llama, [{"role": "user", "content": "Say OK."}], ok_schema, max_tokens=8, cold=True)  # warm-up
    reason, judge, sweep = [], [], []
    for sc in SCENARIOS:
        ctx = sc.context()
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": ctx}]
        r = call(llama, msgs, sc.schema(rationale_max), max_tokens=400, cold=True)
        if shared_judge:  # continue the reasoner's conversation: llama.cpp reuses its KV cache
            review = "Review the recommendation above as a strict judge. " + JUDGE_SYSTEM
            jm = [*msgs, {"role": "assistant", "content": r.text}, {"role": "user", "content": review}]
        else:
            jm = [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"{ctx}\n\nRecommendation:\n{r.text}"},
            ]
        j = call(llama, jm, JUDGE_SCHEMA, max_tokens=150, cold=not shared_judge)
        reason.append(asdict(r))
        judge.append(asdict(j))
        print(f"  {name} s{len(reason)}: {r.seconds:.1f} s + judge {j.seconds:.1f} s (load {j.load:.1f})", flush=True)
    if do_sweep:
        sc = SCENARIOS[0]
        for n_runs, extra in ((0, 0), (3, 0), (3, 8), (3, 24)):
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": sc.context(n_runs, extra)}]
            sweep.append(asdict(call(llama, msgs, sc.schema(rationale_max), max_tokens=400, cold=True)))
    return {
        "model": name,
        "judge_mode": "shared" if shared_judge else "fresh",
        "reason": reason,
        "judge": judge,
        "sweep": sweep,
    }


def _pct(xs: list[bool]) -> str:
    return f"{100 * sum(xs) / max(len(xs), 1):.0f}%"


def _p95(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def _idle(c: dict[str, Any], model: str) -> float:
    """Projected seconds of a call at the idle speeds ENVIRONMENT.md measured (no sampling overhead)."""
    p, g = IDLE_SPEED[model]
    return c["prompt_tokens"] / p + c["gen_tokens"] / g


# Idle 2-core prompt / generation tok/s from ENVIRONMENT.md, for projecting busy-machine runs.
IDLE_SPEED = {"smollm2-135m": (288.0, 90.0), "qwen2.5-coder-0.5b": (208.0, 38.0), "qwen2.5-coder-1.5b": (81.0, 21.0)}


def report(results: list[dict[str, Any]]) -> None:
    """Print the tables from measured results."""
    head = (
        "| model | reasoner mean / p95 s | reco (reasoner+judge) p50 / p95 s | idle-projected reco p50 s "
        "| prompt tok (reasoner / judge new) | prompt tok/s | gen tok/s | valid JSON | = a candidate | sane "
        "| picks top-acc | judge valid | load |"
    )
    print(head + "\n|" + "---|" * (head.count("|") - 1))
    for res in results:
        name, rs, js = res["model"], res["reason"], res["judge"]
        label = res.get("label", name)
        lat = [c["seconds"] for c in rs]
        reco = [a["seconds"] + b["seconds"] for a, b in zip(rs, js, strict=True)]
        idle = [_idle(a, name) + _idle(b, name) for a, b in zip(rs, js, strict=True)] if name in IDLE_SPEED else []
        calls = rs + js
        ptps = sum(c["prompt_tokens"] for c in calls) / max(sum(c["prompt_seconds"] for c in calls), 1e-9)
        gtps = sum(c["gen_tokens"] for c in calls) / max(sum(c["gen_seconds"] for c in calls), 1e-9)
        g = list(zip(*(grade(c["text"], sc) for c, sc in zip(rs, SCENARIOS, strict=True)), strict=True))
        jv = sum(parse(c["text"]) is not None for c in js)
        idle_p50 = f"{statistics.median(idle):.1f}" if idle else "-"
        print(
            f"| {label} | {statistics.mean(lat):.1f} / {_p95(lat):.1f} | {statistics.median(reco):.1f} / {_p95(reco):.1f} "
            f"| {idle_p50} | {statistics.mean(c['prompt_tokens'] for c in rs):.0f} / "
            f"{statistics.mean(c['prompt_tokens'] for c in js):.0f} | {ptps:.0f} | {gtps:.1f} | {_pct(list(g[0]))} "
            f"| {_pct(list(g[1]))} | {_pct(list(g[2]))} | {_pct(list(g[3]))} | {jv}/{len(js)} "
            f"| {statistics.mean(c['load'] for c in calls):.1f} |"
        )
    print("\nSample rationale (scenario 1):")
    for res in results:
        print(
            f"- {res.get('label', res['model'])}: {(parse(res['reason'][0]['text']) or {}).get('rationale', res['reason'][0]['text'])!r}"
        )
    print("\nAnswers:")
    for res in results:
        for i, (r, j) in enumerate(zip(res["reason"], res["judge"], strict=True), 1):
            print(
                f"  {res.get('label', res['model'])} s{i} ({r['prompt_tokens']}+{r['gen_tokens']} tok, {r['seconds']:.1f} s): {r['text'][:260]}"
            )
            print(
                f"  {res.get('label', res['model'])} judge s{i} ({j['prompt_tokens']} new+{j['gen_tokens']} tok, {j['seconds']:.1f} s): {j['text'][:160]}"
            )
    if any(res["sweep"] for res in results):
        print("\nPrompt length vs latency (scenario 1, cold cache, 0/3/11/27 retrieved runs):")
        print(
            "| model | prompt tok | prompt s | gen tok | gen s | total s | idle-projected s | load |\n|---|---|---|---|---|---|---|---|"
        )
        for res in results:
            for c in res["sweep"]:
                proj = f"{_idle(c, res['model']):.1f}" if res["model"] in IDLE_SPEED else "-"
                print(
                    f"| {res.get('label', res['model'])} | {c['prompt_tokens']} | {c['prompt_seconds']:.1f} | {c['gen_tokens']} "
                    f"| {c['gen_seconds']:.1f} | {c['seconds']:.1f} | {proj} | {c['load']:.1f} |"
                )


def main() -> None:
    """Measure (or re-report saved results) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--fresh-judge", action="store_true", help="judge in its own conversation (no prefix reuse)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the prompt-length sweep")
    ap.add_argument("--compact", action="store_true", help="short system prompt, rationale maxLength 200")
    ap.add_argument("--out", type=Path, help="append each model's raw results to this JSON file")
    ap.add_argument("--report", type=Path, nargs="*", help="only print tables from saved JSON files")
    args = ap.parse_args()
    if args.report:
        report([r for p in args.report for r in json.loads(p.read_text())])
        return
    names = [n for n in args.models.split(",") if n]
    for n in names:
        if n not in EMBEDDED_MODELS:
            raise SystemExit(f"unknown model {n!r}; known: {', '.join(EMBEDDED_MODELS)}")
    print(f"cpus={os.cpu_count()} threads={args.threads or os.cpu_count()} loadavg={os.getloadavg()[0]:.1f}")
    results = []
    for n in names:
        results.append(measure(n, args.threads, not args.fresh_judge, not args.no_sweep, args.compact))
        if args.out:
            saved = json.loads(args.out.read_text()) if args.out.exists() else []
            args.out.write_text(json.dumps([*saved, results[-1]], indent=1))
    report(results)


if __name__ == "__main__":
    main()
