"""A class or sweep name is text wherever the report writes it: no formula in a figure
(matplotlib reads `$...$` as mathtext), no HTML in a Markdown table (not every renderer
filters it), no pipe splitting a cell."""

import pandas as pd

from snnflow.report import figures
from snnflow.report.export import markdown_table


def test_a_name_with_dollars_is_drawn_as_written(tmp_path):
    plt, _ = figures._plt()
    fig, ax = plt.subplots()
    ax.set_xticks([0, 1], ["$x^$", "cost $5"])
    ax.set_title("$\\frac{$")
    fig.savefig(tmp_path / "names.png")  # mathtext would raise a ValueError here
    plt.close(fig)
    assert (tmp_path / "names.png").stat().st_size > 0


def test_markdown_cells_escape_html_and_pipes():
    table = markdown_table(pd.DataFrame({"class": ["<b>bold</b>", "a|b", "<script>x</script>"],
                                         "accuracy (%)": ["99.0 %", "98.0 %", "97.0 %"]}))
    assert "| &lt;b&gt;bold&lt;/b&gt; |" in table
    assert "| a\\|b |" in table
    assert "<script>" not in table and "&lt;script&gt;x&lt;/script&gt;" in table
