"""``bench.json`` (every figure) and ``bench.md`` (the tables the README quotes), written atomically.

Keys of ``bench.json`` (documented in the README's performance section):

* ``machine``: device, CPU / GPU name, torch threads, versions, date.
* ``peak``: ``{config: {"gflops", "by_width"}}`` per precision / memory format, and ``best``.
* ``models.<preset>``: ``params``, ``params_m``, ``size_mb``, ``gmacs_<W>x<H>`` (per image), ``paper``
  (published figures, where there are some), and for timed presets ``forward`` (the default inference
  options of ``deblur.speedups``: ``ms``, ``images_per_s``, ``gflops``, ``fraction_of_peak``,
  ``psnr_vs_fp32``, ``peak_memory_mib``, ``options``), ``forward_options.<option>`` (the same per speed
  option), ``forward_hd`` (one 1280x720 image), ``re_encode`` (MSFS-Net) and ``train_step.<precision>``
  (``ms``, ``samples_per_s``, ``peak_memory_mib``, ``gflops``, ``fraction_of_peak``; the step's work is
  ``train_gmacs_<W>x<H>`` per sample, counted on the meta device with the loss's feature passes;
  channels_last, as ``deblur-train`` trains by default) and ``train_step_nchw.<precision>`` (before).
* ``loader``, ``analysis``, ``tiling``, ``precision_run``: see :mod:`deblur.bench.pipeline`.
* ``targets``: each target of the benchmark issue with its value, threshold and ``met``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deblur.speedups import describe_options
from deblur.utils.files import atomic_write_json, atomic_write_text


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
    if analysis:
        out["analysis"] = {"value": analysis["speedup"], "target": ">= 20x the plain loop",
                           "met": analysis["speedup"] >= 20.0}  # fmt: skip
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
        paper = ", ".join(f"{k} {v}" for k, v in fig.get("paper", {}).items()) or "-"
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
        lines += ["", "## Speed options (forward, batch at the forward size; ms and PSNR vs fp32 NCHW)", ""]
        names = list(dict.fromkeys(o for _, f in timed for o in f["forward_options"]))
        lines += ["| preset | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for preset, fig in timed:
            cells = []
            for name in names:
                o = fig["forward_options"].get(name)
                cells.append("-" if o is None else f"{o['ms']:.0f} ms ({_fmt(o['psnr_vs_fp32'], 1)} dB)")
            lines.append(f"| {preset} | " + " | ".join(cells) + " |")
        encode = [(p, f["re_encode"]) for p, f in timed if "re_encode" in f]
        if encode:
            lines += ["", "Skipping the encoder re-run at inference (it only feeds the losses):", ""]
            for preset, e in encode:
                with_it, without = e["with_re_encode_ms"], e["inference_ms"]
                lines.append(
                    f"- {preset}: {with_it:.0f} ms with it, {without:.0f} ms without ({e['speedup']:.2f}x)"
                )
    if result.get("targets"):
        lines += ["", "## Targets", "", "| target | value | threshold | met |", "|---|---:|---|---|"]
        for name, t in result["targets"].items():
            value = t.get("value", t.get("value_mib"))
            lines.append(f"| {name} | {_fmt(value)} | {t['target']} | {'yes' if t['met'] else 'no'} |")
    for section in ("loader", "analysis", "tiling", "precision_run"):
        if result.get(section):
            lines += ["", f"## {section}", "", "```", _pretty(result[section]), "```"]
    return "\n".join(lines) + "\n"


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
