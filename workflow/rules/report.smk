# The study page (results/report.html) and, for `snakemake --report`, every table and
# figure of the registry (snnflow.report.registry) with its caption, by section.
PRESENT = [name for name, has in (("sweeps", SWEEPS), ("nir", NIR)) if has]
FIGURES_DRAWN = figure_names(T_VALUES, config["snn"]["main_T"], PRESENT)
TABLES_MADE = table_names(PRESENT)
NIR_CHECKS = [nir_check_path(model_name("snn", T), seed) for T in T_VALUES for seed in SEEDS]
# The sweeps' runs, in the order of their tables: variants as in the file, then seeds.
SWEEP_RUNS = [sweep_run_folder(sweep.name, variant, seed)
              for sweep in SWEEPS.values() for variant in sweep.variants for seed in SEEDS]


rule report:
    """The study report: every table (CSV), figure (PNG) and the self-contained page
    results/report.html.
    """
    input:
        runs=[f"{run_folder(model, seed)}/{RUN_FILES[file]}"
              for model in MODELS for seed in SEEDS for file in REPORTED_FILES],
        sweep_runs=[f"{folder}/{RUN_FILES[file]}" for folder in SWEEP_RUNS
                    for file in REPORTED_FILES],
        nir=NIR_CHECKS if NIR else [],
        data=["results/data/dataset.csv", "results/data/examples.npz"],
        captions=[str(caption_file(entry)) for entry in REPORT_CONTENTS],
    output:
        html=report("results/report.html", caption="../report/page.rst",
                    category="0. The study page"),
        tables=[report(f"results/tables/{name}.csv",
                       caption=str(caption_file(REPORT_TABLES[name])),
                       category=report_category(REPORT_TABLES[name].section),
                       subcategory="Tables")
                for name in TABLES_MADE],
        figures=[report(f"results/figures/{name}.png",
                        caption=str(caption_file(REPORT_FIGURES[name])),
                        category=report_category(REPORT_FIGURES[name].section),
                        subcategory="Figures")
                 for name in FIGURES_DRAWN],
    params:
        runs=[run_folder(model, seed) for model in MODELS for seed in SEEDS],
        sweep_runs=SWEEP_RUNS,
        nir_checks=NIR_CHECKS if NIR else None,
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
