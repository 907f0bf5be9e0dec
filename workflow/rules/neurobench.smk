# The field's yardstick (config key neurobench, snnflow.scoring): every trained run, the
# study's models and the sweeps' variants, every seed, scored by NeuroBench's harness on
# its test split, beside the project's own counts of the same things.


rule neurobench:
    """Score a run of the study's models with NeuroBench (footprint, parameters, connection
    sparsity, accuracy, activation sparsity, synaptic operations) on its test split and
    compare each metric with the project's own count where it has one.
    """
    input:
        model=f"{run_folder(RESULTS, '{name}', '{seed}')}/{RUN_FILES['model']}",
        run=f"{run_folder(RESULTS, '{name}', '{seed}')}/{RUN_FILES['run']}",
        predictions=f"{run_folder(RESULTS, '{name}', '{seed}')}/{RUN_FILES['predictions']}",
        data=lambda wc: CNN_INPUT if wc.name == model_name("cnn") else frames_of(wc.name[5:]),
    output:
        neurobench_path(run_folder(RESULTS, "{name}", "{seed}")),
    wildcard_constraints:
        name=r"cnn|snn_T[1-9][0-9]*",
        seed=r"[0-9]+",
    params:
        samples=config["neurobench"]["samples"],
        version=NEUROBENCH_VERSION,  # installing another release reruns the scoring
        code=code_fingerprint("neurobench"),
    log:
        f"{RESULTS}/logs/neurobench_{{name}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/neurobench_{{name}}_seed{{seed}}.tsv"
    conda:
        "../../envs/neurobench.yaml"
    script:
        "../scripts/neurobench.py"


rule neurobench_sweep:
    """Score a sweep's run with NeuroBench on its test split, as rule neurobench does."""
    input:
        model=f"{sweep_run_folder(RESULTS, '{sweep}', '{variant}', '{seed}')}/{RUN_FILES['model']}",
        run=f"{sweep_run_folder(RESULTS, '{sweep}', '{variant}', '{seed}')}/{RUN_FILES['run']}",
        predictions=(f"{sweep_run_folder(RESULTS, '{sweep}', '{variant}', '{seed}')}/"
                     f"{RUN_FILES['predictions']}"),
        data=sweep_frames,
    output:
        neurobench_path(sweep_run_folder(RESULTS, "{sweep}", "{variant}", "{seed}")),
    wildcard_constraints:
        sweep=r"[A-Za-z0-9][A-Za-z0-9_-]*",
        variant=r"[^/~]+~[^/]+(/[^/~]+~[^/]+)*",
        seed=r"[0-9]+",
    params:
        samples=config["neurobench"]["samples"],
        version=NEUROBENCH_VERSION,
        code=code_fingerprint("neurobench"),
    log:
        f"{RESULTS}/logs/sweeps/{{sweep}}/{{variant}}/neurobench_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweeps/{{sweep}}/{{variant}}/neurobench_seed{{seed}}.tsv"
    conda:
        "../../envs/neurobench.yaml"
    script:
        "../scripts/neurobench.py"
