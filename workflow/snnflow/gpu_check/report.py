"""gpu-check's record: every row as it comes, written into the check's folder after each
(gpu-check.json and its Markdown tables, gpu-check.md), within a time budget; the
outcome in a few words (snnflow.gpu_check)."""

import gc
import json
import os
import time
from pathlib import Path

CORRECTNESS = ("lif", "block", "training")
SECTIONS = (*CORRECTNESS, "speed", "energy", "accuracy")


class Report:
    """The figures so far, written into `folder` after every row (gpu-check.json and a
    Markdown table, gpu-check.md), with a time budget: a row asked for past it is listed
    as skipped instead of run."""

    def __init__(self, folder, settings, budget_seconds):
        self.json_path = Path(folder) / "gpu-check.json"
        self.md_path = self.json_path.with_suffix(".md")
        self.budget, self.started = budget_seconds, time.perf_counter()
        self.data = {"settings": settings, **{section: [] for section in SECTIONS},
                     "skipped": [], "passed": None, "seconds": 0.0, "finished": False,
                     "stopped_by": None}

    def run_row(self, section, name, measure):
        """Append measure()'s row (a dict) to `section`; an exception becomes the row's
        reason (and a failed correctness row); past the budget the row is skipped."""
        if time.perf_counter() - self.started > self.budget:
            self.data["skipped"].append(f"{section}: {name}")
            self.write()
            return None
        try:
            row = {"name": name, **measure()}
        except Exception as err:  # noqa: BLE001 - a row that cannot run says why
            row = {"name": name, "passed": False if section in CORRECTNESS else None,
                   "error": f"{type(err).__name__}: {one_line(err)}"}
        finally:
            free_device_memory()
        self.data[section].append(row)
        print(f"  {section:8} {name:44} {row_summary(section, row)}", flush=True)
        self.write()
        return row

    def finish(self):
        """True when every correctness row passed, False when one failed, None when none
        failed but some were skipped at the time budget."""
        rows = [row for section in CORRECTNESS for row in self.data[section]]
        skipped = any(name.split(":")[0] in CORRECTNESS for name in self.data["skipped"])
        if not all(row.get("passed") for row in rows):
            self.data["passed"] = False
        else:
            self.data["passed"] = None if skipped or not rows else True
        self.data["finished"] = True
        self.write()
        return self.data["passed"]

    def write(self):
        self.data["seconds"] = round(time.perf_counter() - self.started, 1)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((self.json_path, json.dumps(self.data, indent=2)),
                           (self.md_path, markdown(self.data))):
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text)
            os.replace(partial, path)


def one_line(err, limit=300):
    """The whole message on one line (snnflow.first_line keeps only the first, and an
    out-of-memory error says which GPU and how much on its second)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def free_device_memory():
    """Free everything a row left: reference cycles first (a cycle that holds a CUDA
    graph keeps its private memory pool reserved until collected), then the allocator's
    cache, so that the next row's peak is its own."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def row_summary(section, row):
    if "error" in row:
        return f"{'MISMATCH' if row.get('passed') is False else 'error'}: {row['error']}"
    verdict = {True: "ok", False: "MISMATCH", None: ""}[row.get("passed")]
    if section == "lif":
        return (f"spikes {'equal' if row['spikes_equal'] else 'DIFFER'}, grad diff "
                f"{row['relative_grad_diff']:.1e} of the largest {verdict}")
    if section == "block":
        return (f"flips {row['spike_flips']:.1e}, grad y {row['grad_y_rel_error']:.1e} w "
                f"{row['grad_weight_rel_error']:.1e} b {row['grad_bias_rel_error']:.1e} "
                f"(float32 PyTorch: y {row['grad_y_torch_float32_rel_error']:.1e}) {verdict}")
    if section == "training" and "tries" in row:
        return (f"{row['batches_passed']} of {len(row['tries'])} batches passed; worst grad "
                f"{row['grad_rel_error']:.1e} from float64, "
                f"{row['grad_rel_error_to_float32']:.1e} from float32 PyTorch (which is "
                f"{row['torch_float32_grad_rel_error']:.1e} from float64) {verdict}")
    if section == "training":
        return f"largest loss difference {row['max_relative_difference']:.2%} (information)"
    if section == "speed":
        peak = row.get("peak_reserved_gib")
        return (f"train {row['train_epoch_s']:.3f} s, inference "
                f"{row.get('inference_epoch_s', float('nan')):.3f} s per epoch, peak "
                f"{'-' if peak is None else f'{peak:.2f} GiB'}; ran {row['ran']}")
    if section == "energy":
        if not row["measured"]:
            return row["note"]
        return (f"{row['joules']:.1f} J in {row['seconds']:.1f} s ({row['watts']:.0f} W "
                f"mean) over {row['load']}")
    if section == "accuracy" and row["name"] == "demo data":
        return "made"
    if section == "accuracy" and "final_test_acc" in row:
        return (f"test acc {100 * row['final_test_acc']:.2f} % ({row['train_seconds']:.1f} s); "
                f"ran {row['ran']}")
    return verdict


def result_line(data):
    """The outcome in a few words (the last line gpu-check prints, and the table's head)."""
    if data["stopped_by"]:
        return f"incomplete: stopped by {data['stopped_by']}"
    if data["passed"] is None:
        return ("incomplete: correctness rows skipped at the time budget" if data["finished"]
                else "not finished")
    return "all checks passed" if data["passed"] else "MISMATCH"


def energy_line(data):
    """Whether the NVML energy counter was read: measured, or why not."""
    rows = [row for row in data["energy"] if "error" not in row]
    if any(row["measured"] for row in rows):
        return "energy measured by NVML"
    errors = [row for row in data["energy"] if "error" in row]
    if rows:
        return f"energy {rows[0]['note']}"
    return f"energy not measured: {errors[0]['error']}" if errors else "energy not measured"


def speed_table(rows):
    lines = ["| model | switches | ran | train s | inference s | peak GiB | kernel check |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | | error | | | | {row['error']} |")
            continue
        peak = row.get("peak_reserved_gib")
        inference = row.get("inference_epoch_s")
        lines.append(f"| {row['model']} | {row['switches']} | {row['ran']} | "
                     f"{row['train_epoch_s']:.3f} | "
                     f"{'-' if inference is None else f'{inference:.3f}'} | "
                     f"{'-' if peak is None else f'{peak:.2f}'} | "
                     f"{row.get('kernel_check', '-')} |")
    return lines


def markdown(data):
    """The report as Markdown tables, for docs/gpu.md."""
    settings = data["settings"]
    lines = [f"# make gpu-check on {settings['name']}", "",
             f"torch {settings['torch']}, device {settings['device']}, "
             f"{data['seconds']:.0f} s{'' if data['finished'] else ' (unfinished)'}; result: "
             + result_line(data) + f"; {energy_line(data)}", ""]
    titles = {"lif": "Triton LIF against the reference step",
              "block": "Fused CUDA block against the three layers in turn",
              "training": "Training against the float64 reference",
              "energy": "Energy read from NVML (as the training jobs read it)",
              "speed": f"Seconds per epoch at batch {settings['batch']} "
                       f"({settings['n_train']} + {settings['n_test']} samples)",
              "accuracy": "Accuracy of the switches (demo data, SNN-16)"}
    for section in SECTIONS:
        if not data[section]:
            continue
        lines += [f"## {titles[section]}", ""]
        lines += speed_table(data[section]) if section == "speed" else [
            "| row | result |", "| --- | --- |",
            *[f"| {row['name']} | {row_summary(section, row).replace('|', '/')} |"
              for row in data[section]]]
        lines.append("")
    if data["skipped"]:
        lines += ["## Skipped (time budget)", "", *[f"- {name}" for name in data["skipped"]], ""]
    return "\n".join(lines)
