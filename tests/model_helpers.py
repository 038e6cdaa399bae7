"""What the tests of the visualisation modules share: models with seeded weights, and the check that a call
left no hook (or dispatch mode) behind."""
from contextlib import contextmanager

import torch
from torch import nn
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


@contextmanager
def meta_parameters():
    """Inside the block, every parameter and buffer a module registers goes to the meta device (as accelerate's
    ``init_empty_weights`` does): a model of any size is built in moments and holds no memory. For builders that
    compute with tensors while building (torchvision's RegNet works out its block widths with ``.tolist()``),
    which ``torch.device("meta")`` breaks."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self, name, tensor, persistent=True):
        register_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


@contextmanager
def as_its_weights_build_it():
    """Call a torchvision builder with ``weights=`` to get the model those weights were made for (ViT-H/14 at
    518 pixels, GoogLeNet without its auxiliary heads, ...) without downloading them: the state dict is not
    fetched and loading it does nothing."""
    from torchvision.models._api import WeightsEnum

    get_state_dict, load_state_dict = WeightsEnum.get_state_dict, nn.Module.load_state_dict
    WeightsEnum.get_state_dict = lambda self, *args, **kwargs: {}
    nn.Module.load_state_dict = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        WeightsEnum.get_state_dict, nn.Module.load_state_dict = get_state_dict, load_state_dict
