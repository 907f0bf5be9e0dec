"""Every Triton kernel compiled for real GPUs, without one: Triton's own compiler takes each
kernel through its stages to PTX and a cubin for sm_86 (RTX 3090) and sm_90 (H100,
H200), as the first launch on such a GPU would. The interpreter (the other kernel
tests) runs the maths on the CPU but compiles nothing, so a kernel that stops compiling
for a GPU, or compiles into something the project does not rely on, fails here:

- the forward kernels divide exactly (div.rn, never an approximate division) and are
  compiled without contracted multiply-adds, so spikes are the reference's bit for bit;
- the block and PLIF backward use no atomics (their sums are deterministic);
- every offset added to a pointer is 64-bit and no 32-bit integer is multiplied, so no
  size a GPU can hold overflows an offset (t * M in 32 bits would at 2**31 elements).
"""

import re

import pytest

triton = pytest.importorskip("triton", reason="Triton is not installed (Linux x86_64 only)")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from snnflow.kernels import block_triton_jit, lif_triton_jit  # noqa: E402
from snnflow.model.neuron import NEURONS, SURROGATES  # noqa: E402

TARGETS = {"sm_86": GPUTarget("cuda", 86, 32), "sm_90": GPUTarget("cuda", 90, 32)}
FLOAT_ARGS = {"tau", "v_th", "v_reset", "alpha"}
TRITON_TYPES = {"float32": "fp32", "bfloat16": "bf16"}


def signature(kernel, pointers, constants):
    """Triton's signature of `kernel`: pointers' element types from `pointers`, float
    settings as fp32, every other argument a 32-bit integer (sizes and strides as the
    launcher passes them), and the constexprs."""
    types = {}
    for name in kernel.arg_names:
        if name in constants:
            types[name] = "constexpr"
        elif name.endswith("_ptr"):
            types[name] = "*" + pointers.get(name, "fp32")
        else:
            types[name] = "fp32" if name in FLOAT_ARGS else "i32"
    return types


def compile_for(target, kernel, pointers, constants, fp_fusion):
    source = ASTSource(fn=kernel, signature=signature(kernel, pointers, constants),
                       constexprs=constants)
    return triton.compile(source, target=TARGETS[target],
                          options={"enable_fp_fusion": fp_fusion})


def variants():
    """(name, kernel, pointer types, constexprs, fp fusion as launched, forward?)."""
    yield "lif forward", lif_triton_jit.forward_kernel, {}, {"BLOCK": 1024}, False, True
    for surrogate in SURROGATES:
        yield (f"lif backward {surrogate}", lif_triton_jit.backward_kernel, {},
               {"BLOCK": 1024, "SURROGATE": SURROGATES.index(surrogate)}, True, False)
    for neuron in ("if", "plif"):
        index = NEURONS.index(neuron)
        yield (f"{neuron} forward", lif_triton_jit.neuron_forward_kernel, {},
               {"BLOCK": 1024, "NEURON": index}, False, True)
        for surrogate in SURROGATES:
            yield (f"{neuron} backward {surrogate}", lif_triton_jit.neuron_backward_kernel, {},
                   {"BLOCK": 1024, "SURROGATE": SURROGATES.index(surrogate), "NEURON": index},
                   True, False)
    for dtype in ("float32", "bfloat16"):
        t = TRITON_TYPES[dtype]
        for windows, channels in ((4, 32), (128, 1)):  # channels_last, contiguous tiles
            tile = {"WB": windows, "CB": channels}
            for count in (False, True):
                yield (f"block forward {dtype} {windows}x{channels} count={count}",
                       block_triton_jit.forward_kernel,
                       {"y_ptr": t, "out_ptr": t, "count_ptr": "i64"},
                       {"COUNT": count, **tile}, False, True)
            for surrogate in SURROGATES:
                yield (f"block backward {dtype} {windows}x{channels} {surrogate}",
                       block_triton_jit.backward_kernel, {"y_ptr": t, "gp_ptr": t},
                       {**tile, "SURROGATE": SURROGATES.index(surrogate)}, True, False)


VARIANTS = list(variants())


@pytest.fixture(scope="module", params=sorted(TARGETS))
def compiled(request):
    """{variant name: (compiled kernel, is forward)} for one GPU architecture."""
    return {name: (compile_for(request.param, kernel, pointers, constants, fusion), forward)
            for name, kernel, pointers, constants, fusion, forward in VARIANTS}


def test_every_kernel_compiles_to_a_cubin_for_the_gpu(compiled):
    for name, (kernel, _) in compiled.items():
        assert kernel.asm["cubin"], name
        target = re.search(r"^\.target (sm_\d+)", kernel.asm["ptx"], re.M).group(1)
        assert target == f"sm_{kernel.metadata.target.arch}", name


def test_forward_kernels_divide_exactly_and_contract_no_multiply_adds(compiled):
    for name, (kernel, forward) in compiled.items():
        if not forward:
            continue
        ptx = kernel.asm["ptx"]
        if not name.startswith(("if", "plif")):  # the IF and PLIF divide by nothing
            assert re.search(r"\bdiv\.rn\.f32\b", ptx), name
        assert not re.search(r"\bdiv\.(approx|full)\.", ptx), name
        if not name.startswith("block"):  # the block forward's BatchNorm is one fma on purpose
            assert not re.search(r"\bfma\.rn\.f32\b", ptx), name


def test_the_block_and_plif_backward_use_no_atomics(compiled):
    """Their sums (per channel, the PLIF's decay gradient) are deterministic."""
    for name, (kernel, _) in compiled.items():
        if name.startswith(("block backward", "plif backward")):
            assert not re.search(r"^\s*(@%p\d+\s+)?(atom|red)\.", kernel.asm["ptx"], re.M), name


def test_offsets_are_64_bit_and_no_32_bit_integer_is_multiplied(compiled):
    for name, (kernel, _) in compiled.items():
        ttir = kernel.asm["ttir"]
        offsets = re.findall(r"tt\.addptr .*?: (\S+), (tensor<[^>]*>|i\d+)", ttir)
        assert offsets, name
        narrow = [t for _, t in offsets if not re.search(r"i64>?$", t)]
        assert not narrow, (name, narrow)
        products = re.findall(r"arith\.muli .*?: (tensor<[^>]*>|i\d+)", ttir)
        assert all(re.search(r"i64>?$", t) for t in products), (name, products)
