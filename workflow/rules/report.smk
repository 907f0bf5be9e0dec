# The study page (results/report.html) and, for `snakemake --report`, every table and
# figure with a caption (workflow/report/{tables,figures}/<name>.rst), by stage.
REPORT_FIGURES = figure_names(T_VALUES, config["snn"]["main_T"])


rule report:
    input:
        runs=[f"{run_folder(model, seed)}/{file}"
              for model in MODELS for seed in SEEDS for file in RUN_FILES],
        data=["results/data/dataset.csv", "results/data/examples.npz"],
    output:
        html=report("results/report.html", caption="../report/page.rst", category="Report"),
        tables=[report(f"results/tables/{name}.csv", caption=f"../report/tables/{name}.rst",
                       category=category, subcategory="Tables")
                for name, category in REPORT_TABLES.items()],
        figures=[report(f"results/figures/{name}.png", caption=f"../report/figures/{name}.rst",
                        category=REPORT_FIGURE_CATEGORIES[name], subcategory="Figures")
                 for name in REPORT_FIGURES],
    params:
        runs={model: {seed: run_folder(model, seed) for seed in SEEDS} for model in MODELS},
        main_T=config["snn"]["main_T"],
        data=lambda wildcards, input: str(Path(input.data[0]).parent),
        energy=config["energy"],
        code=code_fingerprint("report"),
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report.py"
