# Ablation sweeps (config key sweep, snnflow.plan.sweeps): one job per row of a sweep's table
# and seed, at the sweep's T, on the main runs' frame caches. The table is not an input:
# a row's values reach its jobs as params, so adding a row runs only its jobs and the
# report, and removing one only drops it from the report.


rule train_sweep:
    """Train the CSNN variant of one row of a sweep's table with one seed, resuming a
    matching checkpoint.
    """
    input:
        sweep_frames,
    output:
        **run_outputs(sweep_run_folder(RESULTS, "{sweep}", "{variant}", "{seed}")),
    wildcard_constraints:
        sweep=r"[A-Za-z0-9][A-Za-z0-9_-]*",
        variant=r"[^/~]+~[^/]+(/[^/~]+~[^/]+)*",
        seed=r"[0-9]+",
    params:
        settings=lambda wc: snn_settings(config, sweep_of(wc)[0].T, wc.seed, sweep_of(wc)[1]),
        sweep=lambda wc: sweep_variant(wc.sweep, wc.variant, sweep_of(wc)[1]),
        code=code_fingerprint("train_snn"),
        cpu_threads=CPU_THREADS,
        checkpoint=lambda wc: on_disk(
            sweep_checkpoint_path(RESULTS, wc.sweep, wc.variant, wc.seed)),
        curves=lambda wc: on_disk(
            sweep_tensorboard_folder(RESULTS, wc.sweep, wc.variant, wc.seed)),
    threads: TRAIN_THREADS
    priority: 1  # before the NIR jobs that wait on them: training holds the GPU slots busy
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/sweeps/{{sweep}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{{sweep}}/{{variant}}/seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_snn.py"
