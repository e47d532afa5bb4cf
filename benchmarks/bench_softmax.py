"""The softmax family, float32, against PyTorch. Targets: cross_entropy forward +
backward at (4096, 1000) <= 2x; log_softmax forward + backward at (65536, 1000)
(262 MB per array) <= 1.5x."""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
logits = rng.standard_normal((4096, 1000)).astype(np.float32)
target = rng.integers(0, 1000, 4096)
"""

_LARGE = """
import numpy as np
rng = np.random.default_rng(0)
logits = rng.standard_normal((65536, 1000), dtype=np.float32)
grad = rng.standard_normal((65536, 1000), dtype=np.float32)
"""

CASES = [
    Case(
        name="cross_entropy fwd+bwd (4096, 1000) float32",
        target=2.0,
        fancydl_setup=_DATA + """
import fancydl
one = np.ones((), np.float32)
def step():
    loss, pullback = fancydl.vjp(fancydl.cross_entropy, logits, target)
    return pullback(one)
""",
        fancydl_stmt="step()",
        torch_setup=_DATA + """
import torch
x = torch.tensor(logits, requires_grad=True)
t = torch.tensor(target)
def step():
    x.grad = None
    torch.nn.functional.cross_entropy(x, t).backward()
""",
        torch_stmt="step()",
    ),
    Case(
        name="log_softmax fwd+bwd (65536, 1000) float32",
        target=1.5,
        fancydl_setup=_LARGE + """
import fancydl
def step():
    out, pullback = fancydl.vjp(fancydl.log_softmax, logits, 1)
    return pullback(grad)
""",
        fancydl_stmt="step()",
        torch_setup=_LARGE + """
import torch
x = torch.tensor(logits, requires_grad=True)
g = torch.tensor(grad)
def step():
    out = torch.nn.functional.log_softmax(x, 1)
    return torch.autograd.grad(out, x, g)
""",
        torch_stmt="step()",
    ),
]
