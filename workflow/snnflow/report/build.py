"""The study report: tables (CSV, and as the page shows them in LaTeX and Markdown),
figures (PNG, PDF and SVG) and one self-contained HTML page.

Reads only what the earlier jobs wrote (snnflow.report.study): per run (model and seed,
and sweep variant and seed) metrics.csv, layers.csv, predictions.csv and run.json; the
data summary's dataset.csv
and examples.npz. Nothing is typed in by hand but the reference study's published
numbers (snnflow.report.tables). What it makes is the registry's (snnflow.report.registry),
which is also the rule's list of declared outputs.
"""

import io
from pathlib import Path

from snnflow.jobs.atomic import atomic_path
from snnflow.report.registry import (FIGURE_FORMATS, FIGURES, TABLE_FORMATS, TABLES,
                                     figure_names, table_names)


UNDATED = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}  # the same bytes each time


def build_report(run_folders, main_T, data_dir, energy, html_path, tables_dir, figures_dir,
                 sweep_folders=(), nir_checks=None, neurobench=False):
    """Write every table to `tables_dir`/<name>.csv (and .tex and .md: the cells the page
    shows, snnflow.report.export), every figure to `figures_dir`/<name>.png (and .pdf and
    .svg) and the page to `html_path`; the sweeps' runs lie in `sweep_folders`, the NIR
    checks' rows in the files `nir_checks` (None: no NIR export); with `neurobench`, every
    run's NeuroBench scores lie in its folder."""
    import matplotlib.pyplot as plt

    from snnflow.report import figures, tables
    from snnflow.report.export import latex_table, markdown_table
    from snnflow.report.page import displayed, render_page
    from snnflow.report.registry import Display
    from snnflow.report.study import load_study

    study = load_study(run_folders, main_T, data_dir, energy, sweep_folders, nir_checks,
                       neurobench)
    present = [name for name, has in (("sweeps", study.sweep_runs),
                                      ("nir", study.nir is not None),
                                      ("neurobench", neurobench)) if has]
    for name in table_names(present):  # in order: a table may use the ones before it
        study.tables[name] = getattr(tables, TABLES[name].build)(study)
    t_values = sorted({r.T for r in study.runs if r.T is not None})
    drawn = {name: getattr(figures, FIGURES[name].draw)(study)
             for name in figure_names(t_values, main_T, present)}
    for name, df in study.tables.items():
        with atomic_path(Path(tables_dir) / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        cells = displayed(df, TABLES[name].display or Display(), study.classes)
        for extension, render in zip(TABLE_FORMATS[1:], (latex_table, markdown_table)):
            with atomic_path(Path(tables_dir) / f"{name}.{extension}") as tmp:
                Path(tmp).write_text(render(cells))
    pngs = {}  # name -> PNG bytes, written to figures_dir and embedded in the page
    for name, fig in drawn.items():
        figures.percent_axes_within_0_100(fig)
        for extension in FIGURE_FORMATS:
            buffer = io.BytesIO()
            fig.savefig(buffer, dpi=100, bbox_inches="tight", format=extension,
                        metadata=UNDATED.get(extension))
            with atomic_path(Path(figures_dir) / f"{name}.{extension}") as tmp:
                tmp.write_bytes(buffer.getvalue())
            if extension == "png":
                pngs[name] = buffer.getvalue()
        plt.close(fig)
    page = render_page(study, pngs)
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text(page)
