"""The report's tables for a thesis or a paper: LaTeX (booktabs) and Markdown, holding the
cells the page shows (snnflow.report.page.displayed), so a table copied from either says
what the page says.

In LaTeX a mean ± std cell is `$a \\pm b$` and a column of percentages carries its unit
in the header, "(%)", instead of in every cell. Headers are words with their units
("final test accuracy (%)", "energy (µJ)"), not the CSV's identifiers. A table wider
than a page's text block (an article's, about TEXT_WIDTH_CHARS characters) is set as
several tabulars, one under the other, each repeating the first column, and a long
text column wraps (p{} columns), so each \\input fits the text width unscaled. The LaTeX
needs only `booktabs`:

    \\usepackage{booktabs}  ...  \\input{results/tables/comparison.tex}
"""

import html
import re

import pandas as pd

from snnflow.scoring import NEUROBENCH_METRICS

PERCENT = re.compile(r"^(-?\d+(?:\.\d+)?)(?: ± (\d+(?:\.\d+)?))? %$")
MEAN_STD = re.compile(r"^(-?[\d.]+(?:e[-+]?\d+)?) ± ([\d.]+(?:e[-+]?\d+)?)$")
NUMBER = re.compile(r"^-?\d[\d.]*(?:e[-+]?\d+)?$")
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "±": r"$\pm$", "µ": r"$\mu$"}


# The words of a CSV identifier's parts ("final_test_acc"), and the parts that are units,
# moved to the end in parentheses ("energy_uj": "energy (µJ)").
HEADER_WORDS = {"acc": "accuracy", "val": "validation", "ops": "operations", "macs": "MACs",
                "sops": "SOPs", "ac": "AC", "mac": "MAC", "e": "E", "nir": "NIR",
                "std": "std", "uj": "", "pj": "", "j": "", "seconds": "", "gib": ""}
HEADER_UNITS = {"uj": "µJ", "pj": "pJ", "j": "J", "seconds": "s", "gib": "GiB"}
TEXT_WIDTH_CHARS = 54  # an article's 345 pt text block (34.5 em), less the column gaps
WRAP_CHARS = 24        # a text column with longer cells wraps at this width
EM_PER_CHAR = 0.6      # Computer Modern at 10 pt: digits 0.5 em, text about 0.5 on average
WIDEST_PER_CHAR = 0.8  # a header's word of capitals ("MACs") is wider


def human_header(name):
    """A table header in words with its unit: "final_test_acc" -> "final test accuracy",
    "energy_uj" -> "energy (µJ)"; a header already in words, or one of NeuroBench's metric
    names ("Effective_ACs": the reader looks them up as NeuroBench writes them), is kept."""
    if ("_" not in name and name.lower() not in HEADER_WORDS) or name in NEUROBENCH_METRICS:
        return name
    parts = name.split("_")
    words = [HEADER_WORDS.get(part.lower(), part) for part in parts]
    units = [HEADER_UNITS[part.lower()] for part in parts if part.lower() in HEADER_UNITS]
    text = " ".join(word for word in words if word)
    return text + (f" ({', '.join(units)})" if units else "")


def latex_text(text):
    """`text` with LaTeX's special characters escaped."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in str(text))


def _cells(column):
    return ["-" if pd.isna(value) else str(value) for value in column]


def latex_table(df):
    """`df` (the page's cells) as booktabs tabulars: one where it fits the text width,
    else several, each with the first column and as many others as fit."""
    specs = []  # (header, cells, alignment, width in characters)
    for name in df.columns:
        cells = _cells(df[name])
        shown = [c for c in cells if c != "-"]
        percent = bool(shown) and all(PERCENT.match(c) for c in shown)
        words = human_header(str(name)) + (" (%)" if percent else "")
        numeric = bool(shown) and all(PERCENT.match(c) or MEAN_STD.match(c) or NUMBER.match(c)
                                      for c in shown)
        longest = max((len(c) for c in cells), default=1)
        word = max(len(w) for w in words.split())  # the header wraps between its words
        width = min(max(longest, min(len(words), 12)), WRAP_CHARS)
        if numeric:
            width = max(longest, min(len(words), 12))
        width = max(width, word * WIDEST_PER_CHAR / EM_PER_CHAR)  # its longest word fits
        em = f"{width * EM_PER_CHAR:.2f}em"
        align = "r" if numeric else (f"p{{{em}}}" if longest > WRAP_CHARS else "l")
        header = rf"\parbox[b]{{{em}}}{{\raggedright {latex_text(words)}}}"
        specs.append((header, [_latex_cell(c, percent) for c in cells], align, width + 2))
    first, rest = specs[0], specs[1:]
    parts, part, used = [], [], first[3]
    for spec in rest:
        if part and used + spec[3] > TEXT_WIDTH_CHARS:
            parts.append(part)
            part, used = [], first[3]
        part.append(spec)
        used += spec[3]
    parts.append(part)
    tabulars = []
    for part in parts:
        chosen = [first, *part] if part else [first]
        lines = [r"\begin{tabular}{" + "".join(spec[2] for spec in chosen) + "}", r"\toprule",
                 " & ".join(spec[0] for spec in chosen) + r" \\", r"\midrule"]
        lines += [" & ".join(row) + r" \\" for row in zip(*(spec[1] for spec in chosen))]
        lines += [r"\bottomrule", r"\end{tabular}"]
        tabulars.append("\n".join(lines))
    return "\n\n\\medskip\n\\noindent\n".join(tabulars) + "\n"


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
    lines = ["| " + " | ".join(cell(human_header(str(name))) for name in df.columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in zip(*columns)]
    return "\n".join(lines) + "\n"
