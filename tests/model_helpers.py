"""What the tests of the visualisation modules share: models with seeded weights, and the check that a call
left no hook (or dispatch mode) behind."""
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def seeded(model, seed=0):
    """``model`` with every parameter drawn from N(0, 0.5²) by a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def assert_no_hooks(model):
    """No module of ``model`` keeps a hook of any kind, no global module hook is left, no dispatch mode is on."""
    for name, m in model.named_modules():
        for hooks in _HOOKS:
            assert not getattr(m, hooks, None), f"{name or 'the model'} ({type(m).__name__}) keeps {hooks}"
    assert not torch.nn.modules.module._global_forward_hooks
    assert not torch.nn.modules.module._global_forward_pre_hooks
    assert _get_current_dispatch_mode() is None
