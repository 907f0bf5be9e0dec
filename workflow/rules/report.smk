# The study page (<results_dir>/report.html) and, for `snakemake --report`, every table and
# figure of the registry (snnflow.report.registry) with its caption, by section.
PRESENT = [name for name, has in (("sweeps", SWEEPS), ("nir", NIR), ("neurobench", NEUROBENCH))
           if has]
FIGURES_DRAWN = figure_names(T_VALUES, config["snn"]["main_T"], PRESENT)
TABLES_MADE = table_names(PRESENT)
SECTIONS_MADE = present_sections(FIGURES_DRAWN, TABLES_MADE)
NIR_CHECKS = [nir_check_path(RESULTS, model_name("snn", T), seed)
              for T in T_VALUES for seed in SEEDS]
# The sweeps' runs, in the order of their tables: variants as in the file, then seeds.
SWEEP_RUNS = [sweep_run_folder(RESULTS, sweep.name, variant, seed)
              for sweep in SWEEPS.values() for variant in sweep.variants for seed in SEEDS]
# Every run's NeuroBench scores, beside its files (rules neurobench, neurobench_sweep)
NEUROBENCH_SCORES = [neurobench_path(folder) for folder in
                     [run_folder(RESULTS, model, seed) for model in MODELS for seed in SEEDS]
                     + SWEEP_RUNS]


rule report:
    """The study report: every table (CSV), figure (PNG) and the self-contained page
    <results_dir>/report.html.
    """
    input:
        runs=[f"{run_folder(RESULTS, model, seed)}/{RUN_FILES[file]}"
              for model in MODELS for seed in SEEDS for file in REPORTED_FILES],
        sweep_runs=[f"{folder}/{RUN_FILES[file]}" for folder in SWEEP_RUNS
                    for file in REPORTED_FILES],
        nir=NIR_CHECKS if NIR else [],
        neurobench=NEUROBENCH_SCORES if NEUROBENCH else [],
        data=[f"{RESULTS}/data/dataset.csv", f"{RESULTS}/data/examples.npz"],
        # relative: Snakemake's report lists a job's inputs, and people share it
        captions=[workflow_file(caption_file(entry)) for entry in REPORT_CONTENTS],
    output:
        html=report(f"{RESULTS}/report.html", caption="../report/page.rst",
                    category="0. The study page"),
        tables=[report(f"{RESULTS}/tables/{name}.csv",
                       caption=str(caption_file(REPORT_TABLES[name])),
                       category=report_category(REPORT_TABLES[name].section, SECTIONS_MADE),
                       subcategory="Tables")
                for name in TABLES_MADE],
        figures=[report(f"{RESULTS}/figures/{name}.png",
                        caption=str(caption_file(REPORT_FIGURES[name])),
                        category=report_category(REPORT_FIGURES[name].section, SECTIONS_MADE),
                        subcategory="Figures")
                 for name in FIGURES_DRAWN],
        # for a thesis or a paper: vector figures, the page's tables in LaTeX and Markdown
        vector_figures=[f"{RESULTS}/figures/{name}.{extension}" for name in FIGURES_DRAWN
                        for extension in FIGURE_FORMATS[1:]],
        table_cells=[f"{RESULTS}/tables/{name}.{extension}" for name in TABLES_MADE
                     for extension in TABLE_FORMATS[1:]],
    params:
        runs=[on_disk(run_folder(RESULTS, model, seed)) for model in MODELS for seed in SEEDS],
        sweep_runs=[on_disk(folder) for folder in SWEEP_RUNS],
        nir_checks=[on_disk(path) for path in NIR_CHECKS] if NIR else None,
        neurobench=NEUROBENCH,
        main_T=config["snn"]["main_T"],
        data=lambda wildcards, input: str(Path(input.data[0]).parent),
        energy=config["energy"],
        code=code_fingerprint("report"),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report.py"
