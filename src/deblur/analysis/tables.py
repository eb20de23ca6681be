"""Paper-style result tables from the ``metrics.json`` files of a ``deblur-train`` sweep.

Used by the collectors in ``experiments/<study>/collect.py``. Components (the check / cross columns) are
read from each job's resolved config (``metrics.json["config"]``), never from folder names. Jobs of the
same model and ablation (e.g. several seeds) are averaged. Published numbers stand in extra columns.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from deblur.analysis.methods import (
    MethodMismatch,
    MethodScore,
    check_match,
    describe,
    method_rows,
    scoring_of,
)
from deblur.models.fddn.net import TABLE5_SIZE_MB

YES, NO = "✓", "✗"

#: MSFS-Net Table 4 (GoPro): ablation -> (PSNR, SSIM)
MSFS_TABLE4 = {
    "msfs/no_fsm": (29.80, 0.917),
    "msfs/no_csffm": (30.22, 0.891),
    "msfs/no_clm": (31.08, 0.911),
    "msfs/no_consistency": (31.54, 0.913),
    "msfs/full": (32.73, 0.959),
}
#: FDDN Table 5 (GoPro): ablation -> (PSNR, SSIM, model size MB)
FDDN_TABLE5 = {
    f"fddn/{variant}": (psnr, ssim, TABLE5_SIZE_MB[variant])
    for variant, (psnr, ssim) in {
        "no_distillation": (29.65, 0.892),
        "no_fsb": (29.80, 0.901),
        "no_fdb": (29.21, 0.863),
        "full": (31.42, 0.923),
    }.items()
}
#: baseline networks that stand as one row of their own in a study table: model name -> row label
BASELINES = {"nafnet": "NAFNet (baseline)"}
#: MSFS-Net Table 3: dataset -> (PSNR, SSIM) of MSFS-Net trained on GoPro (HIDE not reported)
MSFS_TABLE3 = {"gopro": (32.73, 0.959), "realblur_r": (36.02, 0.959), "realblur_j": (28.97, 0.908)}


def load_runs(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every readable ``metrics.json`` below ``folders`` (recursively), with ``_path`` added."""
    runs = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("metrics.json")):
            try:
                run = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                print(f"skipping {path}: {err}")
                continue
            runs.append({**run, "_path": str(path)})
    return runs


def msfs_components(config: dict[str, Any]) -> dict[str, bool]:
    """Table 4 columns. Without FSM there are no frequency parts, so CLM and consistency are off too;
    CSFFM is off both without the mix (``use_csffm``) and without any skip (``use_skip``)."""
    model, loss = config.get("model", {}), config.get("loss", {})
    fsm = bool(model.get("use_fsm", True))
    return {
        "FSM": fsm,
        "CSFFM": bool(model.get("use_csffm", True)) and bool(model.get("use_skip", True)),
        "CLM": fsm and float(loss.get("lambda_high", 0.0)) > 0,
        "Consistency": fsm and float(loss.get("lambda_low", 0.0)) > 0,
    }


def fddn_components(config: dict[str, Any]) -> dict[str, bool | None]:
    """Table 5 columns from ``model.variant`` (the frequency distillation block = distillation + FSB)."""
    variant = config.get("model", {}).get("variant", "full")
    known = {
        "full": (True, True, True),
        "no_distillation": (False, True, False),
        "no_fsb": (True, False, False),
        "no_fdb": (False, False, False),
    }
    flags = known.get(variant, (None, None, None))
    names = ("Distillation Block", "Frequency Split Block", "Frequency Distillation Block")
    return dict(zip(names, flags, strict=True))


def msfs_variant(config: dict[str, Any]) -> str:
    """The Table 4 row of a run, from its components (``ablation_name`` can be stale: an ``experiment``
    sets it after the ``ablation`` group): ``msfs/full``, ``msfs/no_fsm``, ``msfs/no_skip`` (no skip at all),
    ``msfs/no_csffm`` (a plain skip), ``msfs/no_clm``, ... (``+``-joined when several are off)."""
    c = msfs_components(config)
    if not c["FSM"]:
        return "msfs/no_fsm"
    no_skip = not bool(config.get("model", {}).get("use_skip", True))
    names = {"CSFFM": "no_skip" if no_skip else "no_csffm", "CLM": "no_clm", "Consistency": "no_consistency"}
    off = [names[name] for name in ("CSFFM", "CLM", "Consistency") if not c[name]]
    return "msfs/full" if not off else "msfs/" + "+".join(off)


def fddn_variant(config: dict[str, Any]) -> str:
    return "fddn/" + str(config.get("model", {}).get("variant", "full"))


def _mean_std(values: Iterable[Any]) -> tuple[float, float]:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def summarize(
    runs: list[dict[str, Any]],
    components: Callable[[dict], dict],
    variant: Callable[[dict], str] | None = None,
) -> list[dict[str, Any]]:
    """One row per (model, variant): mean (and std) of the metrics, components, size; full model last,
    then the baseline rows. ``variant(config)`` names the row (default: the run's ``ablation``); a run of
    a :data:`BASELINES` network (e.g. ``nafnet``) is one row of its own, labelled by :data:`BASELINES`,
    with no components (the ablation columns do not apply to it; ``baseline`` is true)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        model = run.get("model") or run.get("config", {}).get("model", {}).get("name")
        if str(model) in BASELINES:
            name = BASELINES[str(model)]
        else:
            name = variant(run.get("config", {})) if variant else str(run.get("ablation"))
        groups.setdefault((str(model), name), []).append(run)
    rows = []
    for (model, ablation), members in groups.items():
        baseline = model in BASELINES
        row: dict[str, Any] = {
            "model": model,
            "ablation": ablation,
            "baseline": baseline,
            "runs": len(members),
            "components": {} if baseline else components(members[0].get("config", {})),
            "parameters": _mean_std(m.get("parameters") for m in members)[0],
            "size_mb": _mean_std(m.get("size_mb") for m in members)[0],
            "training": sorted({training_settings_text(m) for m in members}),
        }
        for key in ("val/psnr", "val/ssim", "val/psnr_input", "val/ssim_input"):
            row[key], row[key + "_std"] = _mean_std(m.get(key) for m in members)
        rows.append(row)
    rows.sort(key=lambda r: (r["baseline"], r["model"], r["ablation"].endswith("/full"), r["ablation"]))
    return rows


def training_settings_text(run: dict[str, Any]) -> str:
    """``precision 32-true, channels_last on <device>``: a job's training settings from its metrics.json
    (``unrecorded`` for jobs written before metrics.json named them)."""
    if run.get("precision") is None:
        return "unrecorded"
    layout = {True: "channels_last", False: "NCHW"}.get(run.get("channels_last"), "layout ?")
    text = f"precision {run['precision']}, {layout} on {run.get('device', '?')}"
    return text + _recipe_text(run)


def _recipe_text(run: dict[str, Any]) -> str:
    """``, EMA of the weights (ema.decay=D)`` / ``, progressive patches (crop C1->C2)`` when a job's
    metrics.json records them: its validation numbers came from that recipe."""
    text = f", EMA of the weights (ema.decay={run['ema_decay']})" if run.get("ema_decay") is not None else ""
    stages = (run.get("progressive") or {}).get("stages")
    if stages:
        crops = "->".join(str(s.get("crop_size")) for s in stages)
        text += f", progressive patches (data.progressive, crop {crops})"
    return text


def training_settings_note(rows: list[dict[str, Any]]) -> str:
    """The line under a study table naming the precision, memory format and device its jobs trained with;
    it says so when they differ (the rows are then not a like-for-like comparison)."""
    settings = sorted({s for r in rows for s in r.get("training", [])})
    if not settings:
        return ""
    if len(settings) == 1:
        return f"Trained with {settings[0]} (every job)."
    differ = "**Training settings differ between jobs** (not a like-for-like comparison): "
    return differ + "; ".join(settings) + "."


def _fmt(value: float, digits: int, std: float = 0.0) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std and math.isfinite(std) and std > 0 else "")


def _mark(flag: bool | None) -> str:
    return "?" if flag is None else (YES if flag else NO)


def ablation_table(rows: list[dict[str, Any]], paper: dict[str, tuple], title: str, note: str = "") -> str:
    """Markdown in the paper's form: rows = variants, component columns, PSNR, SSIM, parameters, MB,
    then the published PSNR / SSIM (/ MB) beside ours. A baseline row (``row["baseline"]``) has "-" in
    the component columns."""
    components = next((list(r["components"]) for r in rows if not r.get("baseline")), [])
    paper_mb = any(len(v) > 2 for v in paper.values())
    head = ["Variant", *components, "PSNR (dB)", "SSIM", "Parameters", "Size (MB)"]
    head += ["Paper PSNR", "Paper SSIM"]
    head += ["Paper size (MB)"] if paper_mb else []
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * (1 + len(components)) + "---:|" * (len(head) - 1 - len(components)))
    for r in rows:
        published = paper.get(r["ablation"], ())
        cells = [
            r["ablation"],
            *("-" if r.get("baseline") else _mark(r["components"].get(c)) for c in components),
            _fmt(r["val/psnr"], 2, r["val/psnr_std"]),
            _fmt(r["val/ssim"], 4, r["val/ssim_std"]),
            f"{int(r['parameters']):,}" if math.isfinite(r["parameters"]) else "n/a",
            _fmt(r["size_mb"], 2),
            _fmt(published[0], 2) if published else "-",
            _fmt(published[1], 3) if published else "-",
        ]
        if paper_mb:
            cells.append(_fmt(published[2], 2) if published else "-")
        lines.append("| " + " | ".join(cells) + " |")
    psnr_in = _mean_std(r["val/psnr_input"] for r in rows)[0]
    ssim_in = _mean_std(r["val/ssim_input"] for r in rows)[0]
    lines += [
        "",
        f"Blurry input (identity baseline): PSNR {_fmt(psnr_in, 2)} dB, SSIM {_fmt(ssim_in, 4)}. "
        f"Runs per row: {', '.join(str(r['runs']) for r in rows)}.",
        "Ours: final validation of each job (`metrics.json`), torchmetrics PSNR per image / SSIM on the "
        "validation set; size = fp32 parameters in MB (2^20 bytes).",
    ]
    trained = training_settings_note(rows)
    if trained:
        lines.append(trained)
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _method_label(results: dict[str, Any]) -> str:
    """``ours: `msfs` (ckpt)``; a :data:`BASELINES` network: ``NAFNet (baseline): `nafnet` (ckpt)``."""
    name = results.get("model", {}).get("name")
    return f"{BASELINES.get(str(name), 'ours')}: `{name}` ({results.get('ckpt_path')})"


def cross_dataset_table(
    results: dict[str, Any] | list[dict[str, Any]],
    paper: dict[str, tuple] | None = None,
    methods: Sequence[MethodScore] = (),
) -> str:
    """``deblur-eval``'s ``results.json`` (one, or a list: one row each, e.g. MSFS-Net and a NAFNet
    baseline) -> MSFS-Net Table 3 form: one row per evaluated network, then one per other method
    (``methods``: ``deblur-score`` runs, :mod:`deblur.analysis.methods`), the blurry input (when an
    evaluation ran with ``blurry_baseline=true``), then the paper's MSFS-Net, a PSNR / SSIM column pair per
    dataset (the datasets of all, in first-seen order; "-" where a network was not evaluated on one). Each
    dataset's protocol is its first evaluation's; a method scored otherwise is refused
    (:class:`~deblur.analysis.methods.MethodMismatch`). The note under the table is read from the first."""
    from deblur.evaluation import TITLES

    paper = MSFS_TABLE3 if paper is None else paper
    evaluated = [results] if isinstance(results, dict) else list(results)
    datasets = list(dict.fromkeys(d for r in evaluated for d in r.get("datasets", {})))
    first = evaluated[0]
    protocols = _table_scoring(evaluated, datasets)
    _check_evaluated(evaluated, protocols)
    check_match(methods, protocols, hint=RESCORE_HINT)
    head = ["Method", *(f"{TITLES.get(d, d)} {m}" for d in datasets for m in ("PSNR", "SSIM"))]
    lines = [
        "# Cross-dataset evaluation (MSFS-Net Table 3 form): trained on GoPro",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for one in evaluated:
        row = [_method_label(one) + (" + self-ensemble x8" if one.get("self_ensemble") else "")]
        for d in datasets:
            s = one.get("datasets", {}).get(d)
            row += [_fmt(s.get("psnr", math.nan), 2), _fmt(s.get("ssim", math.nan), 4)] if s else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += _method_lines(method_rows(methods), datasets, first)
    lines += _blurry_input_line(evaluated, datasets, protocols)
    theirs = ["MSFS-Net (paper)"]
    for d in datasets:
        pub = paper.get(d)
        same = pub and _papers_protocol(d, protocols[d])  # the paper's numbers: its protocol only
        theirs += [_fmt(pub[0], 2), _fmt(pub[1], 3)] if same else ["-", "-"]
    lines += ["| " + " | ".join(theirs) + " |", ""]
    counts = ", ".join(f"{TITLES.get(d, d)} {s.get('count')}" for d, s in first.get("datasets", {}).items())
    inference = first.get("inference") or {}
    lines.append(
        f"Network run in {inference.get('precision', 'fp32')} on "
        f"{first.get('device_name', first.get('device'))} (torch {first.get('torch', '?')}). "
        f"Images scored: {counts}. Protocols: {_protocols_text(protocols)}. '-' in the paper's row: not "
        "reported in the paper, or scored here under another protocol than the paper's."
    )
    lines += _methods_note(methods, first)
    return "\n".join(lines) + "\n"


#: how to make a refused method row comparable (the cross-dataset table)
RESCORE_HINT = "Score the method's outputs again with deblur-score and the table's protocol."


def _table_scoring(evaluated: list[dict[str, Any]], datasets: list[str]) -> dict[str, tuple]:
    """Each dataset's protocol (and settings) in the table: its first evaluation's."""
    first_seen = {d: next(r["datasets"][d] for r in evaluated if d in r.get("datasets", {}))
                  for d in datasets}  # fmt: skip
    return {d: scoring_of(summary) for d, summary in first_seen.items()}


def _check_evaluated(evaluated: list[dict[str, Any]], protocols: dict[str, tuple]) -> None:
    """Refuse an evaluation scored on a dataset under another protocol (or settings) than the table's
    column for it (its first evaluation's): its numbers would sit in a column they do not belong to."""
    for one in evaluated:
        for d, summary in one.get("datasets", {}).items():
            if scoring_of(summary) != protocols[d]:
                raise MethodMismatch(
                    f"the evaluation of {one.get('ckpt_path')} scored {d} under protocol "
                    f"{describe(scoring_of(summary))}, but the table's {d} column is protocol "
                    f"{describe(protocols[d])} (its first evaluation's); not comparable. Evaluate again "
                    "with the same protocol, crop_border and test_y_channel."
                )


def _papers_protocol(dataset: str, scoring: tuple[tuple[str, Any], ...]) -> bool:
    """True when a column is scored under the protocol the papers report for ``dataset`` (or unrecorded)."""
    from deblur.evaluation import DEFAULT_PROTOCOLS

    protocol = dict(scoring).get("protocol")
    return protocol is None or (protocol == DEFAULT_PROTOCOLS.get(dataset) and len(scoring) == 1)


def _protocols_text(protocols: dict[str, tuple]) -> str:
    """``GoPro, HIDE: 'gopro': ...; RealBlur-J: 'realblur': ...``: each column's protocol and settings."""
    from deblur.evaluation import TITLES

    by_protocol: dict[str, list[str]] = {}
    for d, scoring in protocols.items():
        text = describe(scoring) if scoring else "(unrecorded)"
        by_protocol.setdefault(text, []).append(TITLES.get(d, d))
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in by_protocol.items())


def _method_lines(rows: dict[str, dict], datasets: list[str], first: dict[str, Any]) -> list[str]:
    """One row per other method; a cell scored on another number of images than the table's is marked *."""
    lines = []
    for label, scores in rows.items():
        cells = [label]
        for d in datasets:
            s = scores.get(d)
            if s is None:
                cells += ["-", "-"]
                continue
            mark = "*" if _count_differs(s, first) else ""
            cells += [_fmt(s.psnr, 2) + mark, _fmt(s.ssim, 4) + mark]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _blurry_input_line(evaluated: list[dict[str, Any]], datasets: list[str], protocols: dict) -> list[str]:
    """The "Blurry input (baseline)" row: each dataset's ``blurry_input`` of an evaluation scored under the
    table's protocol (``deblur-eval blurry_baseline=true``); none when no evaluation has one."""
    cells, found = ["Blurry input (baseline)"], False
    for d in datasets:
        summaries = (r.get("datasets", {}).get(d) or {} for r in evaluated)
        same = (s for s in summaries if s.get("blurry_input") and scoring_of(s) == protocols[d])
        b = next((s["blurry_input"] for s in same), None)
        found = found or b is not None
        cells += [_fmt(b["psnr"], 2), _fmt(b["ssim"], 4)] if b else ["-", "-"]
    return ["| " + " | ".join(cells) + " |"] if found else []


def _methods_note(methods: Sequence[MethodScore], first: dict[str, Any]) -> list[str]:
    """The note naming each other method's deblur-score run, and what a * means."""
    if not methods:
        return []
    runs = "; ".join(f"{s.row_label} on {s.dataset}: `{s.folder}` ({s.count} images)" for s in methods)
    lines = [
        "",
        f"Other methods, scored by deblur-score under the table's protocols: {runs}. '-' in their rows: not "
        "scored on that dataset.",
    ]
    if any(_count_differs(s, first) for s in methods):
        lines.append(
            "*: scored on another number of images than the evaluated networks (see the counts): not the "
            "same test set, not a like-for-like comparison."
        )
    return lines


def _count_differs(score: MethodScore, first: dict[str, Any]) -> bool:
    ours = (first.get("datasets", {}).get(score.dataset) or {}).get("count")
    return ours is not None and ours != score.count
