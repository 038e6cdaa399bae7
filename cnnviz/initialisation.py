"""Weight initialisation by name, each scheme's variance formula, and the symmetry that constant weights keep.

Every scheme is applied through ``torch.nn.init`` (its authors' functions, not a re-implementation) to the
weights of every ``nn.Linear`` and ``nn.Conv*`` layer of any model; biases are set to zero and normalisation
layers keep their own initialisation (γ = 1, β = 0). ``variance`` states what each scheme aims at for one
layer: Glorot & Bengio 2010 (Xavier), He et al. 2015 (Kaiming), LeCun et al. 1998, Saxe et al. 2014
(orthogonal).
"""
import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SCHEMES", "ACTIVATIONS", "SCALED_SCHEMES", "InitError", "is_finite_number", "LayerInit",
           "initialisable_layers", "fans", "gain", "variance", "init_table", "initialise_", "draw_scale", "SeededDraws",
           "unit_spread"]

#: name → (what the chapter calls it, the variance of the weights as a formula)
SCHEMES = {
    "zeros": ("zeros", "0"),
    "constant": ("a constant c", "0 (every weight equals c)"),
    "normal": ("N(0, σ²)", "σ²"),
    "xavier_uniform": ("Xavier / Glorot, uniform", "gain² · 2 / (fan_in + fan_out)"),
    "xavier_normal": ("Xavier / Glorot, normal", "gain² · 2 / (fan_in + fan_out)"),
    "kaiming_fan_in": ("He / Kaiming, fan-in", "gain² / fan_in"),
    "kaiming_fan_out": ("He / Kaiming, fan-out", "gain² / fan_out"),
    "lecun": ("LeCun", "1 / fan_in"),
    "orthogonal": ("orthogonal", "gain² / max(rows, columns)"),
}
#: the activations the chapter compares, by the name ``torch.nn.init.calculate_gain`` knows them
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class InitError(ValueError):
    """An initialisation that cannot be done; the message says what is allowed."""


@dataclass(frozen=True)
class LayerInit:
    """One layer under one scheme: its fans, the gain, and the variance and standard deviation of its weights
    that the scheme aims at (``formula`` with these numbers)."""
    name: str
    shape: tuple
    fan_in: int
    fan_out: int
    gain: float
    variance: float
    formula: str

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


def initialisable_layers(model: nn.Module) -> list:
    """``[(name, module)]`` of the layers a scheme initialises: every ``nn.Linear`` and ``nn.Conv1d/2d/3d``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _LAYERS)]


def fans(weight_shape) -> tuple:
    """``(fan_in, fan_out)`` of a weight of ``weight_shape`` (out, in, *kernel), as ``torch.nn.init`` counts them:
    a convolution's fan-in is in_channels·k_h·k_w, its fan-out out_channels·k_h·k_w."""
    shape = tuple(weight_shape)
    if len(shape) < 2:
        raise InitError(f"Fans are defined for weights of two or more dimensions, not of shape {shape}.")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise InitError(f"Unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}.")
    return activation


def gain(activation: str) -> float:
    """``torch.nn.init.calculate_gain``: √2 for ReLU, 5/3 for tanh, 1 for sigmoid and linear."""
    return nn.init.calculate_gain(_check_activation(activation))


def is_finite_number(value) -> bool:
    """A real number (Python's or NumPy's, not a bool) that is neither infinite nor NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _gain(activation: str, override) -> float:
    g = gain(activation)
    if override is None:
        return g
    if not is_finite_number(override) or override <= 0:
        raise InitError(f"A gain must be a finite number above 0 (1 for Glorot's original Xavier); got {override!r}.")
    return float(override)


def _check_scheme(scheme: str, sigma, value):
    if scheme not in SCHEMES:
        raise InitError(f"Unknown initialisation scheme {scheme!r}: choose one of {', '.join(SCHEMES)}.")
    if scheme == "normal":
        if not is_finite_number(sigma) or sigma <= 0:
            raise InitError(f"The normal scheme needs a standard deviation σ > 0 (a finite number such as 0.01); "
                            f"got {sigma!r}.")
    if scheme == "constant":
        if not is_finite_number(value):
            raise InitError(f"The constant scheme needs a finite value c for every weight; got {value!r}.")


def variance(scheme: str, weight_shape, *, activation: str = "relu", sigma: float = None,
             value: float = None, gain: float = None) -> tuple:
    """``(variance, formula with numbers)`` of the weights of one layer of ``weight_shape`` under ``scheme``.

    ``activation`` sets the gain (``torch.nn.init.calculate_gain``) for the schemes that use one (Xavier, He,
    orthogonal) unless ``gain`` is given (Glorot and Bengio's original Xavier has gain 1); ``sigma`` is the
    normal scheme's σ, ``value`` the constant's c.
    """
    _check_scheme(scheme, sigma, value)
    fan_in, fan_out = fans(weight_shape)
    g = _gain(activation, gain)
    rows, cols = weight_shape[0], math.prod(weight_shape[1:])  # torch.nn.init.orthogonal_ flattens to this
    if scheme in ("zeros", "constant"):
        return 0.0, "0"
    if scheme == "normal":
        return sigma ** 2, f"σ² = {sigma:g}² = {sigma ** 2:.4g}"
    if scheme.startswith("xavier"):
        v = g ** 2 * 2 / (fan_in + fan_out)
        return v, f"{g:.4g}² · 2 / ({fan_in} + {fan_out}) = {v:.4g}"
    if scheme == "kaiming_fan_in":
        return g ** 2 / fan_in, f"{g:.4g}² / {fan_in} = {g ** 2 / fan_in:.4g}"
    if scheme == "kaiming_fan_out":
        return g ** 2 / fan_out, f"{g:.4g}² / {fan_out} = {g ** 2 / fan_out:.4g}"
    if scheme == "lecun":
        return 1 / fan_in, f"1 / {fan_in} = {1 / fan_in:.4g}"
    v = g ** 2 / max(rows, cols)  # orthonormal rows (or columns): each has squared norm 1
    return v, f"{g:.4g}² / max({rows}, {cols}) = {v:.4g}"


def init_table(model: nn.Module, scheme: str, *, activation: str = "relu", sigma: float = None,
               value: float = None, gain: float = None) -> list:
    """A ``LayerInit`` for every layer ``initialise_`` would touch in ``model``."""
    layers = initialisable_layers(model)
    rows = []
    for name, m in layers:
        shape = tuple(m.weight.shape)
        fan_in, fan_out = fans(shape)
        v, formula = variance(scheme, shape, activation=activation, sigma=sigma, value=value, gain=gain)
        rows.append(LayerInit(name, shape, fan_in, fan_out, _gain(activation, gain), v, formula))
    return rows


def initialise_(model: nn.Module, scheme: str, *, activation: str = "relu", sigma: float = None,
                value: float = None, gain: float = None, seed: int = None) -> nn.Module:
    """Initialise the weights of every linear and convolutional layer of ``model`` **in place** (like
    ``torch.nn.init``'s functions, hence the underscore) with ``scheme`` (a key of ``SCHEMES``); set their
    biases to zero; return ``model``.

    ``activation`` gives the gain of Xavier, He and orthogonal (``torch.nn.init.calculate_gain``), unless
    ``gain`` is given (1: Glorot and Bengio's original Xavier); ``sigma`` is the normal scheme's standard
    deviation, ``value`` the constant scheme's. ``seed``: draw from a generator
    seeded with it, leaving torch's global random state as it was (``None``: draw from the global state).
    """
    _check_scheme(scheme, sigma, value)
    g = _gain(activation, gain)
    layers = initialisable_layers(model)
    if not layers:
        raise InitError(f"{type(model).__name__} has no layer an initialisation scheme applies to (nn.Linear or "
                        "nn.Conv1d/2d/3d); initialise its parameters with torch.nn.init directly.")
    init = {
        "zeros": nn.init.zeros_,
        "constant": lambda w: nn.init.constant_(w, value),
        "normal": lambda w: nn.init.normal_(w, 0.0, sigma),
        "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, gain=g),
        "xavier_normal": lambda w: nn.init.xavier_normal_(w, gain=g),
        "kaiming_fan_in": lambda w: _kaiming(w, "fan_in", activation, gain),
        "kaiming_fan_out": lambda w: _kaiming(w, "fan_out", activation, gain),
        # LeCun's normal initialisation is He's with the gain of a linear unit: std = 1/√fan_in
        "lecun": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear"),
        "orthogonal": lambda w: nn.init.orthogonal_(w, gain=g),
    }[scheme]

    def run():
        with torch.no_grad():
            for _, m in layers:
                init(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    if seed is None:
        run()
    else:
        devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
        with torch.random.fork_rng(devices=devices[:1]):
            torch.default_generator.manual_seed(seed)   # only the CPU's: other devices' generators stay as they are
            if devices:
                torch.cuda.manual_seed(seed)             # the one device forked above, restored after
            run()
    return model


#: the schemes whose weights are a unit draw times one number per layer: N(0, 1) times a standard deviation
#: (``torch.nn.init.normal_``, ``xavier_normal_``, ``kaiming_normal_``) or an orthogonal matrix times the gain
#: (``orthogonal_``); scheme → the unit draw it scales
SCALED_SCHEMES = {"normal": "normal", "xavier_normal": "normal", "kaiming_fan_in": "normal",
                  "kaiming_fan_out": "normal", "lecun": "normal", "orthogonal": "orthogonal"}


def draw_scale(scheme: str, weight_shape, *, activation: str = "relu", sigma: float = None,
               gain: float = None) -> float:
    """The number ``torch.nn.init`` multiplies a unit draw by for a weight of ``weight_shape`` under ``scheme``
    (one of ``SCALED_SCHEMES``): the standard deviation ``normal_`` draws with (σ; Xavier's
    ``gain·√(2 / (fan_in + fan_out))``; He's ``gain / √fan``; LeCun's ``1 / √fan_in``), or the gain
    ``orthogonal_`` multiplies its orthogonal matrix by. Written as ``torch.nn.init`` writes it, so that the
    scale times the unit draw from the same generator state is, bit for bit, what it draws (the tests hold it
    to that)."""
    if scheme not in SCALED_SCHEMES:
        raise InitError(f"{scheme!r} is not a scaled unit draw; the schemes that are: {', '.join(SCALED_SCHEMES)}.")
    _check_scheme(scheme, sigma, None)
    g = _gain(activation, gain)
    fan_in, fan_out = fans(weight_shape)
    if scheme == "normal":
        return float(sigma)
    if scheme == "xavier_normal":
        return g * math.sqrt(2.0 / float(fan_in + fan_out))
    if scheme in ("kaiming_fan_in", "kaiming_fan_out"):
        return g / math.sqrt(fan_in if scheme == "kaiming_fan_in" else fan_out)
    if scheme == "lecun":
        return 1 / math.sqrt(fan_in)
    return g


_NOT_ON_CPU = "not on the CPU"


def _weight_shapes(model: nn.Module):
    """``[(shape, dtype)]`` of the weights ``initialise_`` touches, or ``_NOT_ON_CPU``."""
    layers = [m for _, m in initialisable_layers(model)]
    if any(m.weight.device.type != "cpu" for m in layers):
        return _NOT_ON_CPU
    return [(tuple(m.weight.shape), m.weight.dtype) for m in layers]


class SeededDraws:
    """The weights ``initialise_(model, scheme, seed=seed)`` gives, bit for bit, for the schemes of
    ``SCALED_SCHEMES``, with the unit draws kept from one call to the next.

    Each layer's unit draw (``torch.nn.init.normal_`` with σ = 1, or ``orthogonal_`` with gain 1, from the
    generator seeded as ``initialise_`` seeds it) is made once and kept with the generator's state after it.
    Another scheme of the same kind, another activation's gain or another σ then costs one multiplication per
    layer (``draw_scale``) instead of a new draw (50 QR decompositions for an orthogonal network of depth 50),
    and a network whose first layers have the shapes of the last one (another depth) draws only the layers
    after them. Draws are kept per kind and first layer's shape (a width), for the ``keep`` networks used
    last, so that going back to a width draws nothing. For CPU models; torch's global random state is left as
    it was.
    """

    def __init__(self, seed: int = 0, *, keep: int = 8):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InitError(f"seed must be a whole number, got {seed!r}.")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InitError(f"keep must be a whole number of at least 1, got {keep!r}.")
        self.seed, self.keep = seed, keep
        # (kind, first layer's shape) → (shapes, unit draws, generator states: [before layer 1, after 1, ...]),
        # the one used last at the end
        self._chains = OrderedDict()
        self.drawn = 0      # layers drawn so far (the rest were reused)

    def weights(self, model: nn.Module, scheme: str, *, activation: str = "relu", sigma: float = None,
                gain: float = None) -> list:
        """The initial weight of every layer ``initialise_`` touches (``initialisable_layers`` order)."""
        if scheme not in SCALED_SCHEMES:
            raise InitError(f"SeededDraws keeps only scaled unit draws ({', '.join(SCALED_SCHEMES)}); "
                            f"initialise {scheme!r} with initialise_.")
        _check_scheme(scheme, sigma, None)
        _gain(activation, gain)                                   # a bad gain or activation is refused here
        shapes = _weight_shapes(model)
        if not shapes:
            raise InitError(f"{type(model).__name__} has no layer an initialisation scheme applies to.")
        if shapes is _NOT_ON_CPU:
            raise InitError("SeededDraws draws CPU weights; move the model to the CPU or use initialise_.")
        units = self._units(SCALED_SCHEMES[scheme], shapes)
        return [u * draw_scale(scheme, shape, activation=activation, sigma=sigma, gain=gain)
                for u, (shape, _) in zip(units, shapes)]

    def prefetch(self, model, scheme: str, *, stop=None) -> bool:
        """Make the unit draws ``weights(model, scheme, ...)`` will need ahead of time, one layer at a time,
        asking ``stop()`` before each (a widget stops as soon as a new setting waits); True when all are made.
        ``model`` is a module or the ``[(shape, dtype)]`` of its weights in ``initialisable_layers`` order (a
        widget draws ahead for a network it has not built)."""
        shapes = model if isinstance(model, list) else _weight_shapes(model)
        if scheme not in SCALED_SCHEMES or shapes is _NOT_ON_CPU or not shapes:
            return False
        return self._units(SCALED_SCHEMES[scheme], shapes, stop) is not None

    def _units(self, kind: str, shapes: list, stop=None) -> list:
        key = (kind, shapes[0])
        if key not in self._chains:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(self.seed)        # as initialise_ seeds it
                self._chains[key] = ([], [], [torch.get_rng_state()])
            while len(self._chains) > self.keep:
                self._chains.popitem(last=False)                      # the network used longest ago
        self._chains.move_to_end(key)
        old_shapes, units, states = self._chains[key]
        same = 0
        while same < min(len(shapes), len(old_shapes)) and shapes[same] == old_shapes[same]:
            same += 1
        del old_shapes[same:], units[same:], states[same + 1:]
        draw = nn.init.orthogonal_ if kind == "orthogonal" else nn.init.normal_
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(states[-1])
            for shape, dtype in shapes[same:]:
                if stop is not None and stop():
                    return None
                units.append(draw(torch.empty(shape, dtype=dtype)))   # orthogonal_: gain 1; normal_: N(0, 1)
                old_shapes.append((shape, dtype))
                states.append(torch.get_rng_state())
                self.drawn += 1
        return list(units)


def _kaiming(w, mode, activation, gain):
    if gain is None:
        return nn.init.kaiming_normal_(w, mode=mode, nonlinearity=activation)
    fan_in, fan_out = fans(w.shape)  # kaiming_normal_ takes only a nonlinearity's name, not a gain
    return nn.init.normal_(w, 0.0, gain / math.sqrt(fan_in if mode == "fan_in" else fan_out))


def unit_spread(model: nn.Module) -> dict:
    """``{layer name: the largest difference between any two units' incoming weights}`` for every linear and
    convolutional layer (units: output features or output channels; biases included).

    Exactly 0 means every unit of the layer computes the same function: a symmetry that gradient descent
    cannot break, since identical units receive identical updates.
    """
    spread = {}
    for name, m in initialisable_layers(model):
        w = m.weight.detach().flatten(1)                   # (units, inputs)
        if m.bias is not None:
            w = torch.cat([w, m.bias.detach()[:, None]], 1)
        spread[name] = float((w.max(0).values - w.min(0).values).max()) if len(w) > 1 else 0.0
    return spread
