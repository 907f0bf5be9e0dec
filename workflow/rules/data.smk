rule synthetic_dataset:
    """The offline demo data: a small synthetic N-MNIST and MNIST in the datasets' own file
    formats and layouts.
    """
    output:
        directory(SYNTHETIC_DIR),
    params:
        train_per_class=config["synthetic"]["train_per_class"],
        test_per_class=config["synthetic"]["test_per_class"],
        seed=config["synthetic"]["seed"],
        code=code_fingerprint("synthetic_dataset"),
    log:
        "results/logs/synthetic_dataset.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/synthetic_dataset.py"


rule download_nmnist:
    """Download one N-MNIST archive (train or test), md5-checked, with bounded retries."""
    output:
        "results/raw/downloads/nmnist_{split}.zip",
    wildcard_constraints:
        split="train|test",
    params:
        timeout=config["download"]["timeout_seconds"],
        retries=config["download"]["retries"],
        mirror=config["download"]["nmnist_mirror"],
    log:
        "results/logs/download_nmnist_{split}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_nmnist.py"


rule unpack_nmnist:
    """Unpack one N-MNIST archive into Train/ or Test/ with its <label>/*.bin recordings."""
    input:
        lambda wc: f"results/raw/downloads/nmnist_{wc.folder.lower()}.zip",
    output:
        directory("results/raw/NMNIST/{folder}"),
    wildcard_constraints:
        folder="Train|Test",
    params:
        code=code_fingerprint("unpack_nmnist"),
    log:
        "results/logs/unpack_nmnist_{folder}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/unpack_nmnist.py"


rule download_mnist:
    """Download MNIST's four IDX files from a mirror, md5-checked."""
    output:
        expand("results/raw/MNIST/{name}.gz", name=MNIST_FILES),
    params:
        timeout=config["download"]["timeout_seconds"],
        retries=config["download"]["retries"],
        mirror=config["download"]["mnist_mirror"],
    log:
        "results/logs/download_mnist.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_mnist.py"


rule nmnist_events:
    """Parse every N-MNIST recording once into the event store (pixel codes in file order,
    per-sample offsets).
    """
    input:
        nmnist_inputs(),
    output:
        "results/events/nmnist.h5",
    params:
        root=nmnist_root,
        allow_missing_classes=config["allow_missing_classes"],
        code=code_fingerprint("nmnist_events"),
        kernels=config["performance"]["kernels"],
    threads: 2
    log:
        "results/logs/nmnist_events.log",
    benchmark:
        "results/benchmarks/nmnist_events.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/nmnist_events.py"


rule frames:
    """Bin the stored events into T frames per sample by event count: the frame cache of
    one T.
    """
    input:
        "results/events/nmnist.h5",
    output:
        "results/frames/nmnist_T{T}.h5",
    wildcard_constraints:
        T=r"[1-9][0-9]*",
    params:
        T=lambda wc: int(wc.T),
        code=code_fingerprint("frames"),
        kernels=config["performance"]["kernels"],
    threads: 2
    log:
        "results/logs/frames_T{T}.log",
    benchmark:
        "results/benchmarks/frames_T{T}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/frames.py"


rule mnist_cache:
    """Read and check MNIST's IDX files into the image cache for the CNN."""
    input:
        mnist_inputs(),
    output:
        "results/frames/mnist.h5",
    params:
        folder=mnist_root,
        allow_missing_classes=config["allow_missing_classes"],
        code=code_fingerprint("mnist_cache"),
    log:
        "results/logs/mnist_cache.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/mnist_cache.py"


rule data_summary:
    """The data the runs use: samples per class, events per sample, the source, one test
    sample per class at every T.
    """
    input:
        events="results/events/nmnist.h5",
        frames=expand("results/frames/nmnist_T{T}.h5", T=T_VALUES),
        mnist="results/frames/mnist.h5",
    output:
        dataset="results/data/dataset.csv",
        examples="results/data/examples.npz",
    params:
        T=T_VALUES,
        sources=DATA_SOURCES,
        code=code_fingerprint("data_summary"),
    log:
        "results/logs/data_summary.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/data_summary.py"
