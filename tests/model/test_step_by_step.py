"""The benchmark's step-by-step execution is the same network as the multi-step one."""

import torch

from snnflow.model.snn import CSNN
from snnflow.model.step_by_step import forward_step_by_step


def test_step_by_step_execution_equals_multi_step_in_eval_mode():
    torch.manual_seed(0)
    model = CSNN(channels=(4, 8, 8), hidden=16, engine="reference").eval()
    x = torch.rand(6, 3, 2, 34, 34) * 3
    with torch.no_grad():
        multi, stepwise = model(x), forward_step_by_step(model, x)
    assert stepwise.shape == multi.shape
    assert (stepwise == multi).float().mean() > 0.999
