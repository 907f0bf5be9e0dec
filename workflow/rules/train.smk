rule train_snn:
    input:
        "results/frames/nmnist_T{T}.h5",
    output:
        metrics="results/runs/snn_T{T}/metrics.csv",
        model="results/runs/snn_T{T}/model.pt",
        run="results/runs/snn_T{T}/run.json",
    wildcard_constraints:
        T=r"[1-9][0-9]*",
    params:
        settings=lambda wc: snn_settings(config, wc.T),
        code=code_fingerprint("train_snn"),
        checkpoint=lambda wc: f"results/checkpoints/snn_T{wc.T}.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    log:
        "results/logs/train_snn_T{T}.log",
    benchmark:
        "results/benchmarks/train_snn_T{T}.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_snn.py"


rule train_cnn:
    input:
        "results/frames/mnist.h5",
    output:
        metrics="results/runs/cnn/metrics.csv",
        model="results/runs/cnn/model.pt",
        run="results/runs/cnn/run.json",
    params:
        settings=cnn_settings(config),
        code=code_fingerprint("train_cnn"),
        checkpoint="results/checkpoints/cnn.pt",
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    log:
        "results/logs/train_cnn.log",
    benchmark:
        "results/benchmarks/train_cnn.tsv"
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_cnn.py"
