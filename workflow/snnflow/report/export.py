"""The report's tables for a thesis or a paper: LaTeX (booktabs) and Markdown, holding the
cells the page shows (snnflow.report.page.displayed), so a table copied from either says
what the page says.

In LaTeX a mean ± std cell is `$a \\pm b$` and a column of percentages carries its unit
in the header, "(%)", instead of in every cell. The LaTeX needs only `booktabs`:

    \\usepackage{booktabs}  ...  \\input{results/tables/comparison.tex}
"""

import html
import re

import pandas as pd

PERCENT = re.compile(r"^(-?\d+(?:\.\d+)?)(?: ± (\d+(?:\.\d+)?))? %$")
MEAN_STD = re.compile(r"^(-?[\d.]+(?:e[-+]?\d+)?) ± ([\d.]+(?:e[-+]?\d+)?)$")
NUMBER = re.compile(r"^-?\d[\d.]*(?:e[-+]?\d+)?$")
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "±": r"$\pm$", "µ": r"$\mu$"}


def latex_text(text):
    """`text` with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in str(text))


def _cells(column):
    return ["-" if pd.isna(value) else str(value) for value in column]


def latex_table(df):
    """`df` (the page's cells) as a booktabs tabular."""
    headers, columns, aligns = [], [], []
    for name in df.columns:
        cells = _cells(df[name])
        shown = [c for c in cells if c != "-"]
        percent = bool(shown) and all(PERCENT.match(c) for c in shown)
        headers.append(latex_text(name) + (r" (\%)" if percent else ""))
        numeric = bool(shown) and all(PERCENT.match(c) or MEAN_STD.match(c) or NUMBER.match(c)
                                      for c in shown)
        aligns.append("r" if numeric else "l")
        columns.append([_latex_cell(c, percent) for c in cells])
    lines = [r"\begin{tabular}{" + "".join(aligns) + "}", r"\toprule",
             " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in zip(*columns)]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _latex_cell(cell, percent):
    if cell == "-":
        return "--"
    match = PERCENT.match(cell) if percent else MEAN_STD.match(cell)
    if match:
        mean, std = match.groups()
        return f"${mean} \\pm {std}$" if std else f"${mean}$"
    return latex_text(cell)


def markdown_table(df):
    """`df` (the page's cells) as a Markdown (GitHub) table. A cell's HTML is escaped (a
    class name `<b>` stays text in every renderer; not every one filters HTML), and so
    are the pipes that would split it."""
    def cell(text):
        return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")
    columns = [_cells(df[name]) for name in df.columns]
    numeric = [all(c == "-" or PERCENT.match(c) or MEAN_STD.match(c) or NUMBER.match(c)
                   for c in column) for column in columns]
    lines = ["| " + " | ".join(cell(name) for name in df.columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in zip(*columns)]
    return "\n".join(lines) + "\n"
