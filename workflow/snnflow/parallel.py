"""Ordered map over worker processes for the data stages.

numpy's bincount and small-array work hold the GIL, so threads do not scale;
forked workers do, and they inherit the parent's memory, so large read-only
arrays set before the map reach them without pickling.
"""

import multiprocessing


def ordered_map(func, tasks, workers):
    """Yield func(task) for each task in order, using `workers` processes (inline
    when 1). An exception in a worker is raised here."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        yield from map(func, tasks)
        return
    with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(func, tasks)
