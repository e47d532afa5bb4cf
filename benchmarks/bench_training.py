"""One training step of the capstone chapter's network, against PyTorch.

The LeNet-style network of ``fancydl.models`` (conv 3x3 -> batch_norm -> relu ->
max-pool, twice, then linear; 16 and 32 channels) on a batch of 64 digits of
1x8x8, float64 as in the chapter: forward, cross-entropy, backward, and the Adam
update, against the same ``torch.nn`` network (``fancydl.models.lenet_torch``) with
``torch.optim.Adam``, each library with its own threading policy (``train_step`` keeps
BLAS on one thread; PyTorch decides per operator). Target: <= 2x PyTorch's time.
Also reported (no target): PyTorch on one thread too, as the chapter runs it.
"""

from harness import Case

_DATA = """
import numpy as np
import fancydl
from fancydl import models
rng = np.random.default_rng(0)
x = rng.random((64, 1, 8, 8))
y = rng.integers(0, 10, 64)
params, buffers = models.init_lenet(rng)
"""

_FANCYDL = _DATA + """
optimizer = fancydl.optim.Adam(params, lr=1e-3)
"""

_TORCH = _DATA + """
import torch
model = models.lenet_torch(params, buffers)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
tx, ty = torch.from_numpy(x), torch.from_numpy(y)
def step():
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(tx), ty)
    loss.backward()
    optimizer.step()
    return loss.item()
"""

_ONE_THREAD = """
from threadpoolctl import threadpool_limits
threadpool_limits(1)
"""

CASES = [
    Case(
        name="training step LeNet-BN (64, 1, 8, 8) float64, Adam (fwd+bwd+update)",
        target=2.0,
        fancydl_setup=_FANCYDL,
        fancydl_stmt="models.train_step(params, buffers, optimizer, x, y)",
        torch_setup=_TORCH,
        torch_stmt="step()",
    ),
    Case(
        name="training step, both on 1 thread (torch.set_num_threads(1))",
        target=None,
        fancydl_setup=_FANCYDL + _ONE_THREAD,
        fancydl_stmt="models.train_step(params, buffers, optimizer, x, y)",
        torch_setup=_TORCH + "torch.set_num_threads(1)",
        torch_stmt="step()",
    ),
]
