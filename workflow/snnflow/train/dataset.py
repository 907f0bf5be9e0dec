"""A split resident in memory as integers, drawn in batches that become float on the
device.

The whole cache stays resident as uint8 (on the GPU when training there); each batch
is drawn by index and converted to float on the device, so an epoch does no
per-sample Python work and there is never a float copy of the dataset.
"""

import torch


class ResidentDataset:
    """One split: `inputs` (N, ...) integers, `labels` (N,) (numpy arrays or tensors).

    time_major: inputs are (N, T, ...) frames, batched as (T, N, ...);
    scale: factor applied to the float batch (1/255 for images).
    On CUDA the integers live in GPU memory when they fit in half of what is free,
    else in pinned host memory, gathered into a pinned buffer and copied per batch.
    """

    def __init__(self, inputs, labels, device, time_major, scale=1.0):
        self.device = device
        self.time_major = time_major
        self.scale = scale
        self.inputs = torch.as_tensor(inputs)
        self.labels = torch.as_tensor(labels).to(device)
        self.staging = None
        if device.type == "cuda" and not self.inputs.is_cuda:
            free, _ = torch.cuda.mem_get_info(device)
            if self.inputs.nbytes < free // 2:
                self.inputs = self.inputs.to(device)
            else:
                self.inputs = self.inputs.pin_memory()

    @property
    def resident_on(self):
        return "pinned host memory" if self.inputs.is_pinned() else str(self.inputs.device)

    def __len__(self):
        return len(self.labels)

    def _gather(self, idx, batch_size):
        if self.inputs.device == self.device:
            return self.inputs[idx]
        if self.staging is None:  # pinned host memory -> GPU
            self.staging = torch.empty((batch_size, *self.inputs.shape[1:]),
                                       dtype=self.inputs.dtype).pin_memory()
        out = self.staging[:len(idx)]
        torch.index_select(self.inputs, 0, idx.cpu(), out=out)
        return out.to(self.device, non_blocking=True)

    def batches(self, batch_size, generator=None):
        """(inputs, labels) batches in a shuffled order (with `generator`) or in order."""
        n = len(self)
        order = (torch.randperm(n, generator=generator) if generator is not None
                 else torch.arange(n))
        order = order.to(self.labels.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = self._gather(idx, batch_size).float()
            if self.time_major:  # (N, T, ...) -> (T, N, ...)
                x = x.transpose(0, 1).contiguous()
            if self.scale != 1.0:
                x.mul_(self.scale)
            yield x, self.labels[idx]
