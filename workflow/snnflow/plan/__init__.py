"""The workflow's planning, while the Snakefile is parsed and before any job: the config
checked and turned into each job's settings (settings; config_reference writes
docs/configuration.md from the schema), the sweeps' tables (sweeps), the code each job
runs as its rerun fingerprint (fingerprints), a results folder of the study's own
(results_folder), and what a results folder holds that the config no longer makes
(stale: `make stale`)."""
