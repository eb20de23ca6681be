"""``bench.json`` (every figure) and ``bench.md`` (the tables the README quotes), written atomically.

Keys of ``bench.json`` (documented in the README's performance section):

* ``machine``: device, CPU / GPU name, torch threads, versions, date.
* ``peak``: ``{config: {"gflops", "by_width"}}`` per precision / memory format, and ``best``.
* ``models.<preset>``: ``params``, ``params_m``, ``size_mb``, ``gmacs_<W>x<H>`` (per image), ``paper``
  (published figures, where there are some; bench.md says "no paper row" where no paper has one), and for
  timed presets:

  * ``forward``: the default inference options, resolved as ``deblur-predict`` resolves them (the probe of
    :mod:`deblur.speed`, or its cache): ``ms`` (median), ``min_ms``, ``runs``, ``images_per_s``,
    ``gflops``, ``fraction_of_peak``, ``psnr_vs_fp32``, ``peak_memory_mib``, ``options``, ``probe`` (how
    they were chosen: ``source``, ``times_ms``, ``decisions`` with margins and spreads, ...),
    ``times_ms`` (per interleaved round), ``best_option`` and ``default_vs_best`` (the median over the
    interleaved rounds of the fastest tested option's time / the default's: 1.0 when the default is the
    fastest; ``default_vs_best_spread``: the spread of those per-round ratios, 1.4826 x their MAD;
    ``default_vs_best_min`` / ``_median``: the ratio of minimum / median times);
  * ``forward_options.<option>``: the same figures per speed option, all timed interleaved (``default``
    too when the default is none of them); ``forward_hd``: one 1280x720 image; ``re_encode`` (MSFS-Net,
    interleaved with its fp32 baseline);
  * ``train_step.<precision>`` (channels_last) and ``train_step_nchw.<precision>``: ``ms``, ``min_ms``,
    ``samples_per_s``, ``peak_memory_mib``, ``gflops``, ``fraction_of_peak`` (the step's work is
    ``train_gmacs_<W>x<H>`` per sample, counted on the meta device with the loss's feature passes), all
    four timed interleaved; ``train_step.default`` (as ``deblur-train`` resolves ``channels_last`` and
    ``trainer.precision=auto``: ``channels_last``, ``precision``, ``probe``, its figures),
    ``train_step.default_vs_best`` (``_spread``, ``_min``, ``_median``, as for ``forward``) and
    ``train_step.best_option``.

* ``loader``, ``analysis``, ``tiling``, ``precision_run``: see :mod:`deblur.bench.pipeline`.
* ``gpu``: the GPU tables (:mod:`deblur.bench.gpu`; on by default on CUDA).
* ``targets``: each target of the benchmark issue with its value, threshold and ``met`` (None for figures
  that are information only).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deblur.bench.networks import NO_PAPER_ROW, PAPER_FIGURES
from deblur.speed.options import describe_options
from deblur.utils.files import atomic_write_json, atomic_write_text

#: the target of ``default_vs_best``: the default's time within 5 % of the fastest tested option's
DEFAULT_VS_BEST = 0.95


def _paper_cell(preset: str, figures: dict[str, Any]) -> str:
    """The published figures of ``preset``; "-" when they exist but were left out (``model_overrides``
    changed the network), :data:`~deblur.bench.networks.NO_PAPER_ROW` when no paper has a row for it."""
    published = ", ".join(f"{k} {v}" for k, v in figures.get("paper", {}).items())
    return published or ("-" if preset in PAPER_FIGURES else NO_PAPER_ROW)


def _met(met: bool | None) -> str:
    return "info" if met is None else ("yes" if met else "no")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


def targets(result: dict[str, Any], preset: str) -> dict[str, dict[str, Any]]:
    """The benchmark issue's targets, read from ``result`` (absent parts are left out)."""
    out: dict[str, dict[str, Any]] = {}
    model = result.get("models", {}).get(preset, {})
    forward = model.get("forward")
    if forward:
        ok = forward["fraction_of_peak"] >= 0.5 and forward["psnr_vs_fp32"] >= 45.0
        out["forward_fraction_of_peak"] = {
            "preset": preset, "value": forward["fraction_of_peak"], "psnr_vs_fp32": forward["psnr_vs_fp32"],
            "target": ">= 0.5 of the best conv rate, output >= 45 dB PSNR vs fp32 NCHW", "met": ok,
        }  # fmt: skip
    step = model.get("train_step", {}).get("bf16-mixed")
    if step:
        out["train_step_bf16_fraction_of_peak"] = {
            "preset": preset, "value": step["fraction_of_peak"],
            "target": ">= 0.5 of the best conv rate", "met": step["fraction_of_peak"] >= 0.5,
        }  # fmt: skip
    run = result.get("precision_run")
    if run:
        diff = abs(run["psnr_difference_db"])
        out["bf16_validation_psnr"] = {
            "value": diff,
            "target": "|bf16 - fp32| <= 0.05 dB",
            "met": diff <= 0.05,
        }
    loader = result.get("loader")
    if loader and loader.get("ratio") is not None:
        out["loader"] = {"value": loader["ratio"], "target": ">= 5x a training step's consumption",
                         "met": loader["ratio"] >= 5.0}  # fmt: skip
    analysis = result.get("analysis")
    if analysis and "speedup" in analysis:
        out["analysis"] = {"value": analysis["speedup"], "met": None,
                           "target": "information only: CPU batched / plain-loop images/s"}  # fmt: skip
    if analysis and "cuda_images_per_s" in analysis:
        out["analysis_cuda_images_per_s"] = {"value": analysis["cuda_images_per_s"], "met": None,
                                             "target": "information: batched analysis on CUDA"}  # fmt: skip
    for key, section in (("forward", "forward"), ("train_step", "train_step")):
        ratios = {
            name: fig[section]["default_vs_best"]
            for name, fig in result.get("models", {}).items()
            if isinstance(fig.get(section), dict) and "default_vs_best" in fig[section]
        }
        if ratios:
            out[f"{key}_default_vs_best"] = {
                "value": min(ratios.values()), "per_preset": ratios, "threshold": DEFAULT_VS_BEST,
                "target": f">= {DEFAULT_VS_BEST} for every timed preset (within 5 % of the fastest tested)",
                "met": all(r >= DEFAULT_VS_BEST for r in ratios.values()),
            }  # fmt: skip
    tiled = result.get("tiling", {}).get("tiled")
    if tiled:
        out["tiled_4k_memory"] = {"value_mib": tiled["peak_memory_mib"], "target": "< 4096 MiB peak",
                                  "met": tiled["peak_memory_mib"] < 4096}  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    """The tables of ``bench.md``."""
    m = result["machine"]
    lines = [
        f"# deblur-bench on {m['device_name']} ({m['device']}, {m['threads']} threads, torch {m['torch']})",
        "",
        "## Peak 3x3 convolution rate",
        "",
        "| configuration | GFLOP/s |",
        "|---|---:|",
    ]
    for name, figures in result["peak"].items():
        if name != "best":
            lines.append(f"| {name} | {_fmt(figures.get('gflops'), 1)} |")
    best = result["peak"]["best"]
    lines += ["", f"Best: {best['name']} at {best['gflops']:.1f} GFLOP/s.", "", "## Models", ""]
    sizes = result["settings"]["mac_sizes"]
    head = "| preset | params (M) | size (MB) | paper | " + " | ".join(f"GMACs {s}" for s in sizes)
    head += " | fwd ms | img/s | GFLOP/s | of peak | options | PSNR vs fp32 | HD ms"
    head += " | train samples/s fp32 / bf16 |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for preset, fig in result["models"].items():
        paper = _paper_cell(preset, fig)
        row = [preset, _fmt(fig["params_m"]), _fmt(fig["size_mb"]), paper]
        row += [_fmt(fig.get(f"gmacs_{s}"), 1) for s in sizes]
        fwd = fig.get("forward")
        if fwd:
            label = describe_options(fwd["options"])
            row += [_fmt(fwd["ms"], 0), _fmt(fwd["images_per_s"]), _fmt(fwd["gflops"], 1),
                    _fmt(fwd["fraction_of_peak"]), label, _fmt(fwd["psnr_vs_fp32"], 1)]  # fmt: skip
            row.append(_fmt(fig.get("forward_hd", {}).get("ms"), 0))
            step = fig.get("train_step", {})
            row.append(" / ".join(_fmt(step.get(p, {}).get("samples_per_s")) for p in ("fp32", "bf16-mixed")))
        else:
            row += ["-"] * 8
        lines.append("| " + " | ".join(row) + " |")
    timed = [(p, f) for p, f in result["models"].items() if f.get("forward_options")]
    if timed:
        lines += [
            "",
            "## Speed options (forward at the forward batch and size, timed interleaved: median / min ms, "
            "PSNR vs fp32 NCHW; `default` = the probe's choice where it is none of the others)",
            "",
        ]
        names = list(dict.fromkeys(o for _, f in timed for o in f["forward_options"]))
        lines += ["| preset | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for preset, fig in timed:
            cells = []
            for name in names:
                o = fig["forward_options"].get(name)
                cells.append("-" if o is None else _option_cell(o))
            lines.append(f"| {preset} | " + " | ".join(cells) + " |")
        encode = [(p, f["re_encode"]) for p, f in timed if "re_encode" in f]
        if encode:
            lines += ["", "Skipping the encoder re-run at inference (it only feeds the losses):", ""]
            for preset, e in encode:
                with_it, without = e["with_re_encode_ms"], e["inference_ms"]
                minimum = f", min {e['speedup_min']:.2f}x" if "speedup_min" in e else ""
                lines.append(
                    f"- {preset}: {with_it:.0f} ms with it, {without:.0f} ms without ({e['speedup']:.2f}x"
                    f"{minimum}; medians of runs interleaved)"
                )
    lines += _defaults_section(result)
    if result.get("gpu"):
        lines += _gpu_section(result["gpu"])
    if result.get("targets"):
        lines += ["", "## Targets", "", "| target | value | threshold | met |", "|---|---:|---|---|"]
        for name, t in result["targets"].items():
            value = t.get("value", t.get("value_mib"))
            lines.append(f"| {name} | {_fmt(value)} | {t['target']} | {_met(t['met'])} |")
    for section in ("loader", "analysis", "tiling", "precision_run"):
        if result.get(section):
            lines += ["", f"## {section}", "", "```", _pretty(result[section]), "```"]
    return "\n".join(lines) + "\n"


def _option_cell(o: dict[str, Any]) -> str:
    minimum = f" / {o['min_ms']:.0f}" if "min_ms" in o else ""
    return f"{o['ms']:.0f}{minimum} ms ({_fmt(o['psnr_vs_fp32'], 1)} dB)"


def _train_label(options: dict[str, Any]) -> str:
    return f"{options.get('precision')}{', channels_last' if options.get('channels_last') else ''}"


def _mark(ratio: float) -> str:
    return "met" if ratio >= DEFAULT_VS_BEST else "**not met**"


def _ratio_cells(label: str, source: str, ms: float, section: dict[str, Any]) -> list[str]:
    ratio, spread = section["default_vs_best"], section.get("default_vs_best_spread")
    paired = _fmt(ratio) + ("" if spread is None else f" +/- {_fmt(spread)}")
    return [label, source, _fmt(ms, 0), section["best_option"], paired,
            _fmt(section.get("default_vs_best_min")), _mark(ratio)]  # fmt: skip


def _defaults_section(result: dict[str, Any]) -> list[str]:
    """Per timed preset: the default (as predict / train resolve it) against the fastest tested option."""
    rows = []
    for preset, fig in result.get("models", {}).items():
        fwd = fig.get("forward")
        if not fwd or "default_vs_best" not in fwd:
            continue
        source = fwd.get("probe", {}).get("source", "-")
        cells = [preset, *_ratio_cells(describe_options(fwd["options"]), source, fwd["ms"], fwd)]
        steps = fig.get("train_step", {})
        step = steps.get("default")
        if step:
            source = step.get("probe", {}).get("source", "-")
            cells += _ratio_cells(_train_label(step), source, step["ms"], steps)
        else:
            cells += ["-"] * 7
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    cols = ["default", "chosen by", "ms", "fastest tested", "best / default (per round)", "(min)", "target"]
    head = "| preset | " + " | ".join([f"forward {cols[0]}", *cols[1:], f"train {cols[0]}", *cols[1:]]) + " |"
    return [
        "",
        f"## Defaults against the fastest tested option (target: best / default >= {DEFAULT_VS_BEST})",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
        *rows,
    ]


def _gpu_rows(gpu: dict[str, Any]) -> list[str]:
    lines = []
    for preset, entry in gpu["presets"].items():
        if "error" in entry:
            lines.append(f"| {preset} | - | error: {entry['error'][:100]} |")
            continue
        for batch in gpu["batches"]:
            cells = [preset, str(batch)]
            for part in ("forward", "train_step"):
                row = entry.get(part, {}).get(str(batch), {})
                if not row or "error" in row:
                    cells += [row.get("error", "-")[:100], "-", "-", "-"]
                    continue
                options = row.get("options", {})
                label = describe_options(options) if part == "forward" else _train_label(options)
                cells += [
                    _fmt(row["samples_per_s"], 1),
                    _fmt(row["fraction_of_bf16_peak"]),
                    _fmt(row.get("peak_memory_mib"), 0),
                    f"{label} ({row.get('probe_source')})",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _gpu_compile_rows(gpu: dict[str, Any]) -> list[str]:
    lines = []
    for preset, entry in gpu["presets"].items():
        comp, most = entry.get("compile", {}), entry.get("max_batch", {})
        if "error" in comp:
            cells = [f"error: {comp['error'][:80]}", "-", "-", "-"]
        else:
            keys = (("speedup", 2), ("compile_s", 1), ("eager_ms", 1), ("compiled_ms", 1))
            cells = [_fmt(comp.get(key), digits) for key, digits in keys]
        for part in ("forward", "train_step"):
            found = most.get(part, {})
            if "batch" in found:
                cells.append(f"{found['batch']} ({found['limited_by']})")
            else:
                cells.append(found.get("error", "-")[:80])
        lines.append("| " + " | ".join([preset, *cells]) + " |")
    return lines


def _gpu_recipe_rows(gpu: dict[str, Any]) -> list[str]:
    n = gpu.get("ddp_gpus", 8)
    lines = []
    for name, r in gpu.get("recipes", {}).items():
        if "error" in r:
            lines.append(f"| {name} | {r['preset']} | - | error: {r['error'][:80]} | - | - |")
            continue
        one = f"{r['hours_1_gpu']:.1f} h ({r['days_1_gpu']:.2f} d)"
        many = f"{r[f'hours_{n}_gpus_linear']:.1f} h"
        work = f"{r['epochs']} x {r['pairs']} / {r['batch']}"
        lines.append(f"| {name} | {r['preset']} | {work} | {r['step_ms']:.1f} | {one} | {many} |")
    return lines


def _gpu_section(gpu: dict[str, Any]) -> list[str]:
    """The GPU tables: per preset and batch, forward and training step; compile; largest batch; recipes."""
    size, n = gpu["size"], gpu.get("ddp_gpus", 8)
    title = f"## GPU tables ({gpu['device']}, {size}x{size}; of peak = of {gpu['peak_name']}"
    lines = ["", f"{title}, {gpu['peak_gflops']:.0f} GFLOP/s)", ""]
    lines += [
        "| preset | batch | forward samples/s | of peak | peak MiB | options (chosen by) "
        "| train samples/s | of peak | peak MiB | options (chosen by) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
        *_gpu_rows(gpu),
        "",
        "| preset | compile speed-up | compile s | eager ms | compiled ms | largest forward batch "
        "| largest training batch |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *_gpu_compile_rows(gpu),
    ]
    if gpu.get("recipes"):
        lines += [
            "",
            f"Paper recipes from the measured training step (1 GPU; {n} GPUs with DDP: a linear estimate "
            "without communication, loading or validation time):",
            "",
            f"| recipe | preset | epochs x pairs / batch | step ms | 1 GPU | {n} GPUs (linear) |",
            "|---|---|---|---:|---:|---:|",
            *_gpu_recipe_rows(gpu),
        ]
    return lines


def _pretty(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        return "\n".join(
            f"{pad}{k}:\n{_pretty(v, indent + 1)}" if isinstance(v, dict) else f"{pad}{k}: {_fmt(v, 3)}"
            for k, v in value.items()
        )
    return f"{pad}{_fmt(value, 3)}"


def strict_json(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (an output identical to the reference has an
    infinite PSNR; JSON has no infinity)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write(result: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``output_dir`` (atomically); returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_json(output_dir / "bench.json", strict_json(result))
    md_path = atomic_write_text(output_dir / "bench.md", markdown(result))
    return json_path, md_path
