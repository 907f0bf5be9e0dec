"""A run's trained network from its model.pt (weights and settings), as the jobs after
training read it: the NIR export and its check (snnflow.deploy), NeuroBench's scoring
(snnflow.scoring). The file is read with weights_only: a run's folder is never unpickled."""

from dataclasses import replace

from snnflow import SnnflowError, first_line


def load_trained(model_pt, kinds, what="a run's model", **overrides):
    """(the network of a run's model.pt in eval mode, its RunSettings) for a model of one
    of `kinds` ({name: ModelKind}, the caller's: a job's code fingerprint then holds only
    the networks it reads): the CSNN on the reference engine (the maths as defined, no
    kernel; `overrides` replace its settings, e.g. v_threshold), or the CNN. Any other
    file is refused as not being `what`."""
    import torch

    from snnflow.runs import RunSettings

    try:
        saved = torch.load(model_pt, map_location="cpu", weights_only=True)
        settings = RunSettings(**saved["settings"])
        if settings.model not in kinds:
            raise ValueError(f"a {settings.model} run")
        if settings.model == "snn":
            settings = replace(settings, engine="reference", **overrides)
        model = kinds[settings.model].build(settings, "torch")
        model.load_state_dict(saved["state_dict"])
    except Exception as err:  # not a torch file, other keys or shapes, another model
        raise SnnflowError(f"{model_pt}: not {what} ({type(err).__name__}: "
                           f"{first_line(err, 160)}) - delete it and rerun its training "
                           "job") from None
    return model.eval(), settings
