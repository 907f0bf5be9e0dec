"""What every job script shares: its run, log and one-line errors (run: run_job, log),
whole outputs or none (atomic), and folders that are the user's alone (own_folder)."""
