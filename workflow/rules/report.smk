# The study page (results/report.html) and, for `snakemake --report`, every table and
# figure of the registry (snnflow.report.registry) with its caption, by section.
FIGURES_DRAWN = figure_names(T_VALUES, config["snn"]["main_T"])


rule report:
    """The study report: every table (CSV), figure (PNG) and the self-contained page
    results/report.html.
    """
    input:
        runs=[f"{run_folder(model, seed)}/{RUN_FILES[file]}"
              for model in MODELS for seed in SEEDS for file in REPORTED_FILES],
        data=["results/data/dataset.csv", "results/data/examples.npz"],
        captions=[str(caption_file(entry)) for entry in REPORT_CONTENTS],
    output:
        html=report("results/report.html", caption="../report/page.rst",
                    category="0. The study page"),
        tables=[report(f"results/tables/{name}.csv", caption=str(caption_file(entry)),
                       category=report_category(entry.section), subcategory="Tables")
                for name, entry in REPORT_TABLES.items()],
        figures=[report(f"results/figures/{name}.png",
                        caption=str(caption_file(REPORT_FIGURES[name])),
                        category=report_category(REPORT_FIGURES[name].section),
                        subcategory="Figures")
                 for name in FIGURES_DRAWN],
    params:
        runs=[run_folder(model, seed) for model in MODELS for seed in SEEDS],
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
