"""A class or sweep name is text wherever the report writes it: no formula in a figure
(matplotlib reads `$...$` as mathtext), no HTML in a Markdown table (not every renderer
filters it), no pipe splitting a cell."""

import pandas as pd

from snnflow.report import figures
from snnflow.report.export import markdown_table


def test_a_name_with_dollars_is_drawn_as_written(tmp_path):
    """The figures of named classes (a confusion matrix, per-class accuracy) with names
    that mathtext would refuse (the log-scale tick labels elsewhere keep their mathtext)."""
    classes = ["$x^$", "cost $5", "$\\frac{$"]
    confusion = pd.DataFrame([{"model": "SNN-4", "true": a, "predicted": b,
                               "fraction": float(a == b)} for a in classes for b in classes])
    fig = figures._confusion_matrices(confusion, ["SNN-4"], classes)
    fig.savefig(tmp_path / "confusion.svg")  # mathtext would raise a ValueError here
    text = (tmp_path / "confusion.svg").read_text()
    assert "cost $5" in text and "$x^$" in text


def test_markdown_cells_escape_html_and_pipes():
    table = markdown_table(pd.DataFrame({"class": ["<b>bold</b>", "a|b", "<script>x</script>"],
                                         "accuracy (%)": ["99.0 %", "98.0 %", "97.0 %"]}))
    assert "| &lt;b&gt;bold&lt;/b&gt; |" in table
    assert "| a\\|b |" in table
    assert "<script>" not in table and "&lt;script&gt;x&lt;/script&gt;" in table


def test_an_empty_table_is_written_with_its_headers():
    from snnflow.report.export import latex_table

    empty = pd.DataFrame(columns=["comparison", "p_value"])
    assert "comparison" in latex_table(empty) and "p value" in markdown_table(empty)
