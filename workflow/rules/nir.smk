# Deploying the SNN (config key nir, snnflow.deploy): every SNN run of the study exported
# as a NIR graph, and the graph run by the frameworks that import it, compared spike for
# spike with the trained model on the test frames.


rule export_nir:
    """Export an SNN run's trained model as a NIR graph (BatchNorm folded, LIFs as NIR's
    LIF with the dt and the threshold rule in the graph's metadata).
    """
    input:
        model=f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/{RUN_FILES['model']}",
        run=f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/{RUN_FILES['run']}",
    output:
        f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/model.nir",
    wildcard_constraints:
        T=r"[1-9][0-9]*",
        seed=r"[0-9]+",
    params:
        code=code_fingerprint("export_nir"),
    log:
        f"{RESULTS}/logs/export_nir_T{{T}}_seed{{seed}}.log",
    conda:
        "../../envs/nir.yaml"
    script:
        "../scripts/export_nir.py"


rule verify_nir:
    """Run an SNN run's NIR graph in SpikingJelly's, Norse's and snnTorch's importers on the
    test frames and compare output spikes, predictions, accuracy and layer spikes with the
    trained model.
    """
    input:
        graph=f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/model.nir",
        model=f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/{RUN_FILES['model']}",
        run=f"{run_folder(RESULTS, model_name('snn', '{T}'), '{seed}')}/{RUN_FILES['run']}",
        frames=lambda wc: frames_of(wc.T),
    output:
        nir_check_path(RESULTS, model_name("snn", "{T}"), "{seed}"),
    wildcard_constraints:
        T=r"[1-9][0-9]*",
        seed=r"[0-9]+",
    params:
        samples=config["nir"]["samples"],
        importers=NIR_IMPORTER_VERSIONS,  # installing or upgrading one reruns the check
        code=code_fingerprint("verify_nir"),
    log:
        f"{RESULTS}/logs/verify_nir_T{{T}}_seed{{seed}}.log",
    conda:
        "../../envs/nir.yaml"
    script:
        "../scripts/verify_nir.py"
