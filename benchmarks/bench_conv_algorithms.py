"""The four convolution algorithms of fancydl.conv_algorithms against PyTorch's conv2d.

Forward only, float32, each side in a fresh process (``python benchmarks/run.py
conv_algorithms``). No targets: these are the teaching implementations of the
convolution chapter's algorithm landscape (direct loop over kernel offsets, im2col +
one GEMM, FFT with the channel sum in the frequency domain, Winograd F(2×2, 3×3)); the
ratios say how each route fares on each shape, next to ``fancydl.conv2d`` (in
``bench_conv.py``) and PyTorch's oneDNN kernels.
"""

from harness import Case

#: (input shape, weight shape, padding): a ResNet 3×3 layer, AlexNet's 11×11 stem with
#: few output channels, and a 5×5 layer on small maps.
SHAPES = [((8, 64, 56, 56), (64, 64, 3, 3), 1),
          ((1, 3, 224, 224), (16, 3, 11, 11), 0),
          ((8, 16, 32, 32), (16, 16, 5, 5), 2)]

ALGORITHMS = ["direct", "im2col", "fft", "winograd_f23"]


def _data(x_shape, w_shape):
    return f"""
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal({x_shape}).astype(np.float32)
w = (0.1 * rng.standard_normal({w_shape})).astype(np.float32)
"""


def _case(algorithm, x_shape, w_shape, padding):
    data = _data(x_shape, w_shape)
    name = (f"conv2d_{algorithm} fwd {x_shape}*{w_shape[:2]} "
            f"{w_shape[2]}x{w_shape[3]} p{padding}")
    return Case(name=name, target=None,
                fancydl_setup=data + "from fancydl import conv_algorithms\n",
                fancydl_stmt=f"conv_algorithms.conv2d_{algorithm}(x, w, {padding})",
                torch_setup=data + "import torch\ntorch.set_grad_enabled(False)\n"
                                   "tx, tw = torch.tensor(x), torch.tensor(w)\n",
                torch_stmt=f"torch.nn.functional.conv2d(tx, tw, padding={padding})")


CASES = [_case(algorithm, x_shape, w_shape, padding)
         for x_shape, w_shape, padding in SHAPES for algorithm in ALGORITHMS
         if algorithm != "winograd_f23" or w_shape[2:] == (3, 3)]
