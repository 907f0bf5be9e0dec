"""Stage 4, the report: the data summary, the tables and figures (one registry entry
each) and the study page. Reads only the files the earlier stages wrote."""
