# One job per (model, seed): adding a seed runs only the new jobs.


rule train_snn:
    input:
        "results/frames/nmnist_T{T}.h5",
    output:
        metrics="results/runs/snn_T{T}/seed{seed}/metrics.csv",
        layers="results/runs/snn_T{T}/seed{seed}/layers.csv",
        predictions="results/runs/snn_T{T}/seed{seed}/predictions.csv",
        model="results/runs/snn_T{T}/seed{seed}/model.pt",
        run="results/runs/snn_T{T}/seed{seed}/run.json",
    wildcard_constraints:
        T=r"[1-9][0-9]*",
        seed=r"[0-9]+",
    params:
        settings=lambda wc: snn_settings(config, wc.T, wc.seed),
        code=code_fingerprint("train_snn"),
        checkpoint=lambda wc: f"results/checkpoints/snn_T{wc.T}_seed{wc.seed}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    log:
        "results/logs/train_snn_T{T}_seed{seed}.log",
    benchmark:
        "results/benchmarks/train_snn_T{T}_seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_snn.py"


rule train_cnn:
    input:
        "results/frames/mnist.h5",
    output:
        metrics="results/runs/cnn/seed{seed}/metrics.csv",
        layers="results/runs/cnn/seed{seed}/layers.csv",
        predictions="results/runs/cnn/seed{seed}/predictions.csv",
        model="results/runs/cnn/seed{seed}/model.pt",
        run="results/runs/cnn/seed{seed}/run.json",
    wildcard_constraints:
        seed=r"[0-9]+",
    params:
        settings=lambda wc: cnn_settings(config, wc.seed),
        code=code_fingerprint("train_cnn"),
        checkpoint=lambda wc: f"results/checkpoints/cnn_seed{wc.seed}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    log:
        "results/logs/train_cnn_seed{seed}.log",
    benchmark:
        "results/benchmarks/train_cnn_seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_cnn.py"
