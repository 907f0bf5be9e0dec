# One job per (model, seed): adding a seed runs only the new jobs.


rule train_snn:
    """Train the CSNN at T time steps with one seed on its frame cache, resuming a matching
    checkpoint.
    """
    input:
        lambda wc: frames_of(wc.T),
    output:
        **run_outputs(run_folder(RESULTS, model_name("snn", "{T}"), "{seed}")),
    wildcard_constraints:
        T=r"[1-9][0-9]*",
        seed=r"[0-9]+",
    params:
        settings=lambda wc: snn_settings(config, wc.T, wc.seed),
        code=code_fingerprint("train_snn"),
        cpu_threads=CPU_THREADS,
        checkpoint=lambda wc: on_disk(checkpoint_path(RESULTS, model_name("snn", wc.T), wc.seed)),
        curves=lambda wc: on_disk(tensorboard_folder(RESULTS, model_name("snn", wc.T), wc.seed)),
    threads: TRAIN_THREADS
    priority: 1  # before the NIR jobs that wait on them: training holds the GPU slots busy
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/train_snn_T{{T}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_snn_T{{T}}_seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_snn.py"


rule train_cnn:
    """Train the CNN with one seed on MNIST (N-MNIST's twin) or on event images, resuming a
    matching checkpoint."""
    input:
        CNN_INPUT,
    output:
        **run_outputs(run_folder(RESULTS, model_name("cnn"), "{seed}")),
    wildcard_constraints:
        seed=r"[0-9]+",
    params:
        settings=lambda wc: cnn_settings(config, wc.seed),
        code=code_fingerprint("train_cnn"),
        cpu_threads=CPU_THREADS,
        checkpoint=lambda wc: on_disk(checkpoint_path(RESULTS, model_name("cnn"), wc.seed)),
        curves=lambda wc: on_disk(tensorboard_folder(RESULTS, model_name("cnn"), wc.seed)),
    threads: TRAIN_THREADS
    priority: 1  # before the NIR jobs that wait on them: training holds the GPU slots busy
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/train_cnn_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_cnn_seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_cnn.py"
