"""The study page: every entry of the registry in one self-contained HTML file, rendered
from page.html.j2 with Jinja2. Tables are shown as the registry's Display says, figures
embedded as PNG data, each under its title and above its caption."""

import base64
import fnmatch
import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from snnflow.report import FEWER_EVENTS_THAN
from snnflow.report.registry import CONTENTS, Figure, SECTIONS, caption_file
from snnflow.report.tables import REFERENCE_DEVICE, data_scope
from snnflow.runs import FAILURE_ADVICE

TEMPLATE = "page.html.j2"


@dataclass
class Item:
    """One table or figure as the template shows it."""
    anchor: str     # the element's id: "<kind>-<name>" (a table and a figure may share a name)
    title: str
    body: str       # HTML
    caption: str    # HTML
    source: str     # where its numbers are: tables/<name>.csv, or the figure's file
    folded: bool = False


def render_page(study, pngs):
    """The page's HTML: `study` with its tables computed, `pngs` {figure name: PNG}."""
    import jinja2

    sections = {section: [] for section in SECTIONS}
    for entry in _shown_entries(study, pngs):
        sections[entry.section].append(_item(entry, study, pngs))
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)), autoescape=True,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.get_template(TEMPLATE).render(
        runs=", ".join(study.order), n_seeds=study.n_seeds, main_T=study.main_T,
        dataset=study.dataset_name, cnn_data=study.cnn_data,
        cnn_title="MNIST" if study.has_twin else "event images",
        ref_device=REFERENCE_DEVICE, energy=study.energy, banner=banner(study),
        warnings=warnings(study),
        sections=[(title, items) for title, items in sections.items() if items])


def banner(study):
    """One sentence for the top of the page when the data are not the full N-MNIST the
    reference study used, else None."""
    kind, what, _ = data_scope(study)
    cnn = cnn_sentence(study)
    if kind == "full":
        return cnn or None
    if kind == "other":
        return (f"These results come from {what}. The reference study ran N-MNIST only, so "
                "this page shows none of its figures; docs/datasets.md lists published "
                f"results on this dataset, from other networks and protocols.{cnn}")
    return (f"These results come from {what}.{cnn} The reference study's figures beside them "
            "(full N-MNIST and MNIST, 60,000 + 10,000 samples) are not comparable with "
            "them: they show what the method reached, not what this study should reach.")


def cnn_sentence(study):
    """Where the CNN trained on other samples than the SNN (MNIST), a sentence saying on
    what and how many beside the SNN's; else ""."""
    cnn = [r for r in study.runs if r.model == "cnn"]
    snn = [r for r in study.runs if r.model == "snn"]
    if not (cnn and snn and study.has_twin):
        return ""
    n_cnn, n_snn = cnn[0].info.get("n_train"), snn[0].info.get("n_train")
    if not (n_cnn and n_snn) or n_cnn == n_snn:
        return ""
    return (f" The CNN trained on MNIST: {n_cnn} training images, {n_cnn / n_snn:.1f} times "
            f"the SNN's {n_snn} training recordings (the models table).")


def warnings(study):
    """What makes part of the study mean less than it seems, for the top of the page."""
    found = []
    for run, signs in study.failing_runs():
        which = f"{run.label} ({run.sweep['variant']})" if run.sweep else run.label
        found.append(f"{which} seed {run.seed} does not work in evaluation: "
                     f"{', '.join(signs)}. Its numbers below (column works: NO) describe no "
                     f"trained network; {FAILURE_ADVICE}.")
    for run in [*study.runs, *study.sweep_runs]:
        scores = run.neurobench
        for row in [] if scores is None else scores[scores["agrees"] == "NO"].itertuples():
            which = f"{run.label} ({run.sweep['variant']})" if run.sweep else run.label
            found.append(f"NeuroBench's {row.metric} of {which} seed {run.seed}, "
                         f"{row.neurobench:.6g}, differs from the project's own count, "
                         f"{row.project:.6g}, by more than the tolerance {row.tolerance:.3g}: "
                         f"one of the two counts something else than the docs say (the "
                         f"NeuroBench tables, column agreement; compared with "
                         f"{row.compared_with}).")
    for row in study.dataset.itertuples():
        if row.split == "test" and getattr(row, "test_in_train", 0) > 0:
            found.append(f"{int(row.test_in_train)} of the {row.samples} {row.dataset} test "
                         "samples are identical to a training sample: on them the test "
                         "accuracy measures memory, not generalisation (the data table, "
                         "column test_in_train)")
        for column in study.dataset.columns:
            count = getattr(row, column) if column.startswith(FEWER_EVENTS_THAN) else 0
            if count > 0:
                T = column.removeprefix(FEWER_EVENTS_THAN)
                found.append(f"{int(count)} of the {row.samples} {row.dataset} {row.split} "
                             f"samples ({100 * count / row.samples:.1f} %) have fewer events "
                             f"than T={T}: all their frames but the last are empty, so "
                             f"SNN-{T} sees them in one time step (the data table, column "
                             f"{column})")
    return found


def _shown_entries(study, pngs):
    """The entries on the page: the figures drawn, the tables made that have a Display."""
    for entry in CONTENTS:
        if (entry.name in pngs if isinstance(entry, Figure)
                else entry.name in study.tables and entry.display is not None):
            yield entry


def _item(entry, study, pngs):
    anchor = f"{entry.kind}-{entry.name}"
    title = entry.title.format(main_T=study.main_T)
    caption = caption_html(caption_file(entry).read_text())
    if isinstance(entry, Figure):
        image = _img(pngs[entry.name], entry.alt.format(main_T=study.main_T))
        return Item(anchor, title, image, caption, f"figures/{entry.name}.png", entry.other_snns)
    df, display = study.tables[entry.name], entry.display
    body = _html_table(displayed(df, display, study.classes))
    if display.listed:
        first = df.columns[0]
        values = df.drop_duplicates(first).set_index(first)[display.listed]
        body += "<ul class=\"note\">" + "".join(
            f"<li>{html.escape(str(key))}: {html.escape(str(value))}</li>"
            for key, value in values.items()) + "</ul>"
    return Item(anchor, title, body, caption, f"tables/{entry.name}.csv")


def caption_html(text):
    """A caption file (the reStructuredText that Snakemake's report renders: paragraphs
    and ``literals``) as HTML."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    out = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph)
        out.append("<p>" + re.sub(r"``(.+?)``", r"<code>\1</code>", escaped) + "</p>")
    return "".join(out)


def _missing(value):
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _percent(mean, std):
    if _missing(mean):
        return "-"
    return f"{100 * mean:.2f} %" if _missing(std) else f"{100 * mean:.2f} ± {100 * std:.2f} %"


def _number(mean, std, digits):
    if _missing(mean):
        return "-"
    text = f"{mean:.{digits}f}" if abs(mean) < 1e6 else f"{mean:.4g}"
    return text if _missing(std) else f"{text} ± {std:.{digits}f}"


def displayed(df, display, classes=()):
    """The table as the page shows it (snnflow.report.registry.Display); `classes` are the
    class names, in label order."""
    if display.rows_without:
        column, value = display.rows_without
        df = df[df[column] != value]
    out = {}
    for column in df.columns:
        if column.endswith("_std") or column == display.listed or any(
                fnmatch.fnmatchcase(column, pattern) for pattern in display.drop):
            continue
        values = df[column]
        stds = df[f"{column}_std"] if f"{column}_std" in df.columns else [np.nan] * len(df)
        if column in display.percent:
            out[column] = [_percent(m, s) for m, s in zip(values, stds)]
        elif pd.api.types.is_float_dtype(values):
            digits = display.digits.get(column, display.default_digits)
            out[column] = [_number(m, s, digits) for m, s in zip(values, stds)]
        else:  # text and integers; a missing one (NaN, pd.NA) shows as "-"
            out[column] = ["-" if _missing(v) else v for v in values]
    rename = dict(display.rename)
    if display.class_columns:
        rename.update({f"class_{c}": name for c, name in enumerate(classes)})
    return pd.DataFrame(out).rename(columns=rename)


def _html_table(df):
    """The table's HTML; a header may break after each underscore (final_test_acc) and
    between the words of a CamelCase name (NeuroBench's ClassificationAccuracy), so that
    long names do not widen the table past the page, a model's name never."""
    text = df.to_html(index=False, na_rep="-", border=0, classes="table", escape=True)
    text = re.sub(r"<th>([^<]*)</th>",
                  lambda m: "<th>" + re.sub(r"(?<=[a-z])(?=[A-Z])", "<wbr>",
                                            m.group(1).replace("_", "_<wbr>")) + "</th>",
                  text)
    return MODEL_NAME.sub(r'<span class="name">\1</span>', text)


# A model's name (SNN-16) is never broken at its hyphen; longer labels still wrap at spaces
MODEL_NAME = re.compile(r"(?<=[>\s])((?:SNN|CNN)-\d+)(?=[\s<,:;)])")


def _img(png, alt):
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
