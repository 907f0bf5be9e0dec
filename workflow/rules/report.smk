rule report:
    input:
        expand("results/runs/{model}/{file}", model=MODELS, file=["metrics.csv", "run.json"]),
    output:
        html="results/report.html",
        tables=directory("results/tables"),
        figures=directory("results/figures"),
    params:
        runs={model: f"results/runs/{model}" for model in MODELS},
        main_T=config["snn"]["main_T"],
        code=code_fingerprint("report"),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report.py"
