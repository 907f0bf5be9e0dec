"""Ordered map over worker threads for the data stages.

The heavy work (parsing, binning, compressing) runs in C through ctypes, which
releases the GIL, so threads scale over cores without pickling anything; the numpy
fallback (no C compiler) mostly holds the GIL and runs close to one core.
"""

from concurrent.futures import ThreadPoolExecutor


def ordered_map(func, tasks, workers):
    """Yield func(task) for each task in order, using `workers` threads (inline when 1).
    An exception in a worker is raised here."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        yield from map(func, tasks)
        return
    with ThreadPoolExecutor(min(workers, len(tasks))) as pool:
        yield from pool.map(func, tasks)
