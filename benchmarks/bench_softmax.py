"""cross_entropy forward + backward at (4096, 1000), float32: target <= 2x PyTorch."""

from harness import Case

_DATA = """
import numpy as np
rng = np.random.default_rng(0)
logits = rng.standard_normal((4096, 1000)).astype(np.float32)
target = rng.integers(0, 1000, 4096)
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
]
