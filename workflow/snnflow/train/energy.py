"""The GPU's measured energy per training and evaluation epoch, from NVIDIA's NVML.

NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption: millijoules since
the driver loaded, on Volta and newer GPUs) is read after the device has finished an
epoch's work, so the difference between two readings is what the whole GPU drew in
between: the job's kernels, and whatever else ran on that GPU at the time. It comes
from `nvidia-ml-py` (the `pynvml` module torch.cuda itself uses for power readings).
Where there is no NVIDIA GPU, no NVML or no counter, nothing is measured and the reason
is kept for the report.
"""

from dataclasses import dataclass


@dataclass
class EnergyMeter:
    """Joules drawn by one GPU so far, read from its NVML handle."""
    nvml: object
    handle: object
    device_name: str

    def joules(self):
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0


def open_meter(device, nvml=None):
    """(EnergyMeter or None, what the report says about it) for a torch.device."""
    if device.type != "cuda":
        return None, f"not measured: the job trained on the {device.type.upper()}, and NVML " \
                     "measures NVIDIA GPUs only"
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return None, "not measured: nvidia-ml-py (NVML) is not installed"
    return meter_for_uuid(nvml, _nvml_uuid(device))


def meter_for_uuid(nvml, uuid):
    """(EnergyMeter or None, note) for the GPU of NVML UUID `uuid` ("GPU-...")."""
    try:
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
        name = nvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        meter = EnergyMeter(nvml, handle, name)
        meter.joules()  # NotSupported before Volta
    except Exception as err:  # NVMLError and its many subclasses, a missing library
        return None, f"not measured: NVML cannot read the energy of {uuid} ({err})"
    return meter, f"measured by NVML on {name}"


def _nvml_uuid(device):
    """The NVML UUID of a CUDA device: the same GPU whatever CUDA_VISIBLE_DEVICES and
    CUDA's device order say."""
    import torch

    return f"GPU-{torch.cuda.get_device_properties(device).uuid}"
