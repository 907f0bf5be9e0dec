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
        f"{RESULTS}/logs/synthetic_dataset.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/synthetic_dataset.py"


rule download_nmnist:
    """Download one N-MNIST archive (train or test), md5-checked, with bounded retries."""
    output:
        f"{RESULTS}/raw/downloads/nmnist_{{split}}.zip",
    wildcard_constraints:
        split="train|test",
    params:
        timeout=config["download"]["timeout_seconds"],
        retries=config["download"]["retries"],
        mirror=config["download"]["nmnist_mirror"],
    log:
        f"{RESULTS}/logs/download_nmnist_{{split}}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_nmnist.py"


rule unpack_nmnist:
    """Unpack one N-MNIST archive into Train/ or Test/ with its <label>/*.bin recordings."""
    input:
        lambda wc: f"{RESULTS}/raw/downloads/nmnist_{wc.folder.lower()}.zip",
    output:
        directory(f"{RESULTS}/raw/NMNIST/{{folder}}"),
    wildcard_constraints:
        folder="Train|Test",
    params:
        code=code_fingerprint("unpack_nmnist"),
    log:
        f"{RESULTS}/logs/unpack_nmnist_{{folder}}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/unpack_nmnist.py"


rule download_mnist:
    """Download MNIST's four IDX files from a mirror, md5-checked."""
    output:
        expand(f"{RESULTS}/raw/MNIST/{{name}}.gz", name=MNIST_FILES),
    params:
        timeout=config["download"]["timeout_seconds"],
        retries=config["download"]["retries"],
        mirror=config["download"]["mnist_mirror"],
    log:
        f"{RESULTS}/logs/download_mnist.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_mnist.py"


# tonic's datasets (config dataset.name other than nmnist); N-MNIST has its own rules below.
if not NMNIST:

    rule download_tonic:
        """Download one archive of a tonic dataset from tonic's URL, md5-checked with tonic's
        sum, with bounded retries."""
        output:
            f"{RESULTS}/raw/downloads/{{archive}}",
        wildcard_constraints:
            archive="|".join(map(re.escape, TONIC_ARCHIVES)) or "(?!)",
        params:
            name=DATASET,
            mirror=config["download"]["tonic_mirror"],
            timeout=config["download"]["timeout_seconds"],
            retries=config["download"]["retries"],
        log:
            f"{RESULTS}/logs/download_{{archive}}.log",
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/download_tonic.py"


    rule unpack_tonic:
        """Unpack a tonic dataset's archives (tonic's unpacker) into the layout tonic reads."""
        input:
            [f"{RESULTS}/raw/downloads/{name}" for name in TONIC_ARCHIVES],
        output:
            directory(f"{RESULTS}/raw/{DATASET}"),
        params:
            name=DATASET,
            code=code_fingerprint("unpack_tonic"),
        log:
            f"{RESULTS}/logs/unpack_{DATASET}.log",
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/unpack_tonic.py"


    rule tonic_events:
        """Read every sample of a tonic dataset once, with tonic, into the event store (pixel
        codes in file order, per-sample offsets, sensor size and class names; the
        timestamps too in the store of the frames by time)."""
        input:
            tonic_inputs(),
        output:
            EVENT_STORES,
        wildcard_constraints:
            timed="|_timed",
        params:
            name=DATASET,
            root=tonic_root,
            test_fraction=config["dataset"]["test_fraction"],
            split_seed=config["dataset"]["split_seed"],
            allow_missing_classes=config["allow_missing_classes"],
            with_times=lambda wc: bool(wc.timed),
            code=code_fingerprint("tonic_events"),
        log:
            f"{RESULTS}/logs/{DATA_NAME}{{timed}}_events.log",
        benchmark:
            f"{RESULTS}/benchmarks/{DATA_NAME}{{timed}}_events.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/tonic_events.py"


rule nmnist_events:
    """Parse every N-MNIST recording once into the event store (pixel codes in file order,
    per-sample offsets; the timestamps too in the store of the frames by time).
    """
    input:
        nmnist_inputs(),
    output:
        f"{RESULTS}/events/nmnist{{timed}}.h5",
    wildcard_constraints:
        timed="|_timed",
    params:
        root=nmnist_root,
        allow_missing_classes=config["allow_missing_classes"],
        with_times=lambda wc: bool(wc.timed),
        code=code_fingerprint("nmnist_events"),
        kernels=config["performance"]["kernels"],
    threads: 2
    log:
        f"{RESULTS}/logs/nmnist{{timed}}_events.log",
    benchmark:
        f"{RESULTS}/benchmarks/nmnist{{timed}}_events.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/nmnist_events.py"


rule frames:
    """Bin the stored events into T frames per sample by event count or by time (at the
    frame size of config dataset.size): the frame cache of one T.
    """
    input:
        lambda wc: event_store("time" if wc.by else "count"),
    output:
        FRAMES,
    wildcard_constraints:
        T=r"[1-9][0-9]*",
        by="|_by_time",
    params:
        T=lambda wc: int(wc.T),
        framing=lambda wc: "time" if wc.by else "count",
        size=config["dataset"]["size"],
        code=code_fingerprint("frames"),
        kernels=config["performance"]["kernels"],
    threads: 2
    log:
        f"{RESULTS}/logs/frames_T{{T}}{{by}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/frames_T{{T}}{{by}}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/frames.py"


rule mnist_cache:
    """Read and check MNIST's IDX files into the image cache for the CNN."""
    input:
        mnist_inputs(),
    output:
        f"{RESULTS}/frames/mnist.h5",
    params:
        folder=mnist_root,
        allow_missing_classes=config["allow_missing_classes"],
        code=code_fingerprint("mnist_cache"),
    log:
        f"{RESULTS}/logs/mnist_cache.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/mnist_cache.py"


rule data_summary:
    """The data the runs use: samples per class, events per sample, the source, one test
    sample per class at every T.
    """
    input:
        events=EVENT_STORE,
        frames=[frames_of(T) for T in T_VALUES],
        cnn=CNN_INPUT,
    output:
        dataset=f"{RESULTS}/data/dataset.csv",
        examples=f"{RESULTS}/data/examples.npz",
    params:
        T=T_VALUES,
        sources=DATA_SOURCES,
        code=code_fingerprint("data_summary"),
    log:
        f"{RESULTS}/logs/data_summary.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/data_summary.py"
