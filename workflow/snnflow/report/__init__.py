"""Stage 4, the report: the data summary, the tables and figures (one registry entry
each) and the study page. Reads only the files the earlier stages wrote."""

# The data summary's columns of samples with fewer events than a T (+ T): all their frames
# but the last are empty (snnflow.report.data_summary writes them, the page warns)
FEWER_EVENTS_THAN = "fewer_events_than_T"
# Classes the examples figure shows (the first ones; N-Caltech101 has 101)
MAX_EXAMPLE_CLASSES = 12
