"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2, fig. 7): is the classifier looking at the object?

A grey square is slid over the image; at each position the network sees the
occluded copy, and we record the probability of the target class (the true
class, or the unoccluded image's top class) and which class is now the most
probable. Where the probability drops, the network was using what the patch
hid. Many occluded copies go through the network in each forward pass.

Why not captum's ``Occlusion``: it turns the same experiment into a per-pixel
attribution for one target (the output change averaged over the patches that
cover each pixel). Zeiler and Fergus's figure also shows the most probable
class at each position (panel d/e: "the classifier now says *Afghan hound*"),
which needs all the class probabilities of every occluded copy; and a widget
filling the map in as batches finish needs the map per patch position, not
per pixel. ``OcclusionMap.upsampled`` gives captum's kind of per-pixel map
for overlays.

Speed: the occluded copies differ from the image only inside the patch, so
``cnnviz.incremental`` recomputes, layer by layer, only the region the patch
reaches (Nakandala et al. 2019); the rest is copied from one ordinary pass.
"""
import time
import warnings
import weakref
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn

from cnnviz.incremental import Incremental, NotTraceable, _to
from cnnviz.probe import check_channel, eval_mode, prepare
from cnnviz.runtime import synchronize

__all__ = ["OcclusionMap", "occlusion", "occlusion_steps", "patch_positions"]


@dataclass
class OcclusionMap:
    """The result of ``occlusion``: one value per patch position, ``(Hp, Wp)`` = (len(rows), len(cols)).

    ``prob``: probability of ``target`` with the patch at that position;
    ``top_class``, ``top_prob``: the most probable class there and its
    probability; ``done``: False where not computed yet (a partial map given
    to ``on_batch``; ``prob`` is NaN and ``top_class`` -1 there); ``target``,
    ``base_prob``: the class followed and its probability without occlusion;
    ``base_class``: the unoccluded image's top class; ``patch``, ``stride``:
    in pixels; ``rows``, ``cols``: the patches' top-left pixel coordinates;
    ``size``: the side of the (square) input; ``method``: "incremental" when
    each copy recomputed only what its patch changes (``cnnviz.incremental``),
    "full" when each ran through the whole network. All tensors on the CPU.
    """
    prob: torch.Tensor
    top_class: torch.Tensor
    top_prob: torch.Tensor
    done: torch.Tensor
    target: int
    base_prob: float
    base_class: int
    patch: int
    stride: int
    rows: torch.Tensor
    cols: torch.Tensor
    size: int
    method: str = "full"

    @property
    def complete(self) -> bool:
        """Whether every position has been computed."""
        return bool(self.done.all())

    def upsampled(self, size: Optional[int] = None) -> torch.Tensor:
        """A per-pixel heat map (size, size) for overlays: at each pixel, the mean of ``prob`` over the computed
        patches that cover it; ``base_prob`` where none does. ``size`` defaults to the input's side; another
        size is resized bilinearly."""
        s = self.size
        covered = torch.zeros(s, s, dtype=torch.float64)
        total = torch.zeros(s, s, dtype=torch.float64)
        p = self.patch
        for i, r in enumerate(self.rows.tolist()):
            for j, c in enumerate(self.cols.tolist()):
                if self.done[i, j]:
                    total[r:r + p, c:c + p] += float(self.prob[i, j])
                    covered[r:r + p, c:c + p] += 1
        out = torch.where(covered > 0, total / covered.clamp_min(1), torch.full_like(total, self.base_prob)).float()
        if size is not None and int(size) != s:
            out = torch.nn.functional.interpolate(out[None, None], size=(int(size), int(size)), mode="bilinear",
                                                  align_corners=False)[0, 0]
        return out  # (size, size)


def patch_positions(size: int, patch: int, stride: int) -> torch.Tensor:
    """Top-left coordinates of the patches along one side: ``0, stride, 2·stride, …``, plus one flush with the far
    border when the stride does not land there, so every pixel is covered (ZF slide the patch over the whole
    image). E.g. ``patch_positions(10, 4, 4)`` → 0, 4, 6."""
    pos = list(range(0, size - patch + 1, stride))
    if pos[-1] != size - patch:
        pos.append(size - patch)
    return torch.tensor(pos, dtype=torch.long)


def _check(patch, stride, batch_size, size):
    for name, value in (("patch", patch), ("stride", stride), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of pixels (images for batch_size), at least 1; "
                             f"got {value!r}.")
    if patch > size:
        raise ValueError(f"The patch ({patch}×{patch} pixels) is larger than the image ({size}×{size}); use a "
                         f"patch of at most {size} pixels.")


def _fill_tensor(fill, x: torch.Tensor) -> torch.Tensor:
    """The occluder's pixels as a (1, 3, S, S) tensor in the model's input space."""
    if fill is None:
        return torch.zeros_like(x)  # 0 after normalisation = the dataset's mean colour: grey
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return torch.full_like(x, float(fill))
    if isinstance(fill, torch.Tensor):
        f = fill.detach().to(device=x.device, dtype=x.dtype)
        if f.ndim == 3:
            f = f.unsqueeze(0)
        if f.shape != x.shape:
            raise ValueError(f"fill must be None (grey), a number, or a tensor shaped like the model's input "
                             f"{tuple(x.shape[1:])}; got shape {tuple(fill.shape)}.")
        return f
    raise ValueError(f"fill must be None (grey), a number, or a tensor like the input; got {type(fill).__name__}.")


def _full_batch(model, x, fill_x, r0, c0, patch, ar, channels_last):
    """The class probabilities of the occluded copies, each run through the whole network: (B, classes).
    ``r0``, ``c0``: the patches' corners, CPU tensors (B,)."""
    r0, c0 = _to(r0, x.device), _to(c0, x.device)
    in_r = (ar >= r0[:, None]) & (ar < r0[:, None] + patch)                      # (B, S)
    in_c = (ar >= c0[:, None]) & (ar < c0[:, None] + patch)                      # (B, S)
    mask = (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)                     # (B, 1, S, S)
    batch = torch.where(mask, fill_x, x)                                          # (B, 3, S, S)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return torch.softmax(model(batch).float(), dim=1)


#: incremental inference is used when one copy costs at most this share of a full pass's multiply-adds: the
#: windows it cuts and pastes cost time too. Measured on this project's 2-core CPU: ShapesNet at 64² breaks even
#: at about 0.5 and is slower above 0.6; ResNet-18 at 224² with a 32-pixel patch (0.48) is 2.4× faster.
WORTH_IT = 0.6

#: On other devices that threshold means nothing: a GPU runs a full batch as one large kernel per layer, the
#: incremental pass as many small ones plus the cutting and pasting. There the first batch is run both ways,
#: timed after a warm-up with the device synchronised, and the faster path kept for the rest of the map and
#: for later maps of the same model, device, size, patch and batch (``_CHOSEN``).
MEASURED_DEVICES = ("cuda", "mps", "xpu")
_CHOSEN: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _faster(paths, sync, clock=time.perf_counter):
    """Run each of ``paths`` (name → zero-argument function) twice, the second time timed with ``sync()``
    before and after it; return (the faster one's name, its result, {name: seconds})."""
    seconds, results = {}, {}
    for name, fn in paths.items():
        fn()                                   # warm-up: lazy initialisation, cuDNN's algorithm search
        sync()
        t0 = clock()
        results[name] = fn()
        sync()
        seconds[name] = clock() - t0
    best = min(seconds, key=seconds.get)
    return best, results[best], seconds


def _engine(model, x, fill_x, patch):
    """An ``Incremental`` for ``x`` when the model can be traced and a patch saves enough work, else None."""
    try:
        engine = Incremental(model, x)
        c = (x.shape[-1] - patch) // 2
        share = engine.fraction(fill_x[:, :, c:c + patch, c:c + patch])
    except NotTraceable:
        return None                                                               # every copy in full
    except Exception as e:  # a model incremental inference gets wrong must still get its map
        _fall_back(e)
        return None
    if x.device.type in MEASURED_DEVICES:
        return engine if share < 1.0 else None  # the first batch decides (see MEASURED_DEVICES)
    return engine if share <= WORTH_IT else None


def _fall_back(error):
    warnings.warn(f"Incremental inference failed on this model ({type(error).__name__}: {error}); every occluded "
                  f"copy now runs through the whole network instead (the same map, more slowly). "
                  f"occlusion(..., incremental=False) does so from the start.", RuntimeWarning, stacklevel=4)


def occlusion_steps(model: nn.Module, image, *, target: Optional[int] = None, patch: int = 32, stride: int = 8,
                    fill=None, batch_size: int = 64, incremental: bool = True) -> Iterator[OcclusionMap]:
    """``occlusion`` as a generator: yields the partial map after every batch (the last one is complete).

    Each batch runs with the model in eval mode under ``torch.inference_mode``;
    both are undone before each ``yield``, so the caller's code between
    batches sees the model's own train/eval flags and normal autograd.
    The patches' positions stay on the CPU: the only values read back from
    a GPU are each batch's results.
    """
    x = prepare(image, model).x                                                   # (1, 3, S, S)
    size = x.shape[-1]
    _check(patch, stride, batch_size, size)
    fill_x = _fill_tensor(fill, x)
    rows = cols = patch_positions(size, patch, stride)
    hp, wp = len(rows), len(cols)
    with eval_mode(model), torch.inference_mode():
        base = torch.softmax(model(x).float(), dim=1)[0].cpu()                   # (classes,)
        engine = _engine(model, x, fill_x, patch) if incremental else None
    if target is None:
        target = int(base.argmax())
    target = check_channel(target, base.numel(), "the model's output", what="class")
    result = OcclusionMap(prob=torch.full((hp, wp), float("nan")), top_class=torch.full((hp, wp), -1),
                          top_prob=torch.full((hp, wp), float("nan")), done=torch.zeros(hp, wp, dtype=torch.bool),
                          target=target, base_prob=float(base[target]), base_class=int(base.argmax()),
                          patch=patch, stride=stride, rows=rows, cols=cols, size=size,
                          method="full" if engine is None else "incremental")
    ar = torch.arange(size, device=x.device)
    choice_key = (str(x.device), size, patch, batch_size)
    decided = _CHOSEN.get(model, {}).get(choice_key) if engine is not None else None
    if decided == "full":
        engine, result.method = None, "full"
    grid_r, grid_c = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing="ij")
    order_r, order_c = grid_r.reshape(-1), grid_c.reshape(-1)                     # positions, row by row
    channels_last = x.device.type in ("cpu", "cuda")  # oneDNN and cuDNN convolutions are faster that way
    box = torch.arange(patch)                                                     # a patch's rows and columns
    for start in range(0, hp * wp, batch_size):
        i, j = order_r[start:start + batch_size], order_c[start:start + batch_size]
        with eval_mode(model), torch.inference_mode():
            r0, c0 = rows[i], cols[j]                                             # (B,), on the CPU
            p = None
            if engine is not None:
                fill_rows = _to((r0[:, None] + box)[:, :, None], x.device)
                fill_cols = _to((c0[:, None] + box)[:, None, :], x.device)
                content = fill_x[0].permute(1, 2, 0)[fill_rows, fill_cols].permute(0, 3, 1, 2)  # (B, 3, p, p)
                try:
                    if decided is None and x.device.type in MEASURED_DEVICES:
                        decided, p, _ = _faster(
                            {"incremental": lambda: torch.softmax(engine.run(r0, c0, content).float(), dim=1),
                             "full": lambda: _full_batch(model, x, fill_x, r0, c0, patch, ar, channels_last)},
                            lambda: synchronize(x.device))
                        _CHOSEN.setdefault(model, {})[choice_key] = decided
                        if decided == "full":
                            engine, result.method = None, "full"
                    else:
                        p = torch.softmax(engine.run(r0, c0, content).float(), dim=1)
                except Exception as e:  # as in _engine: the map still comes, from whole runs
                    _fall_back(e)
                    engine, result.method, p = None, "full", None
            if p is None:
                p = _full_batch(model, x, fill_x, r0, c0, patch, ar, channels_last)
            top_prob, top_class = p.max(dim=1)
            p_target = p[:, target].cpu()
        result.prob[i, j] = p_target
        result.top_prob[i, j] = top_prob.cpu()
        result.top_class[i, j] = top_class.cpu()
        result.done[i, j] = True
        yield replace(result, prob=result.prob.clone(), top_class=result.top_class.clone(),
                      top_prob=result.top_prob.clone(), done=result.done.clone())


def occlusion(model: nn.Module, image, *, target: Optional[int] = None, patch: int = 32, stride: int = 8,
              fill=None, batch_size: int = 64, on_batch: Optional[Callable[[OcclusionMap], None]] = None,
              incremental: bool = True) -> OcclusionMap:
    """Zeiler & Fergus's occlusion experiment: the class probabilities as a grey square slides over the image.

    ``image``: anything ``cnnviz.probe.prepare`` accepts (a photo's name, a
    file, a uint8 array, a normalised tensor). ``target``: the class to
    follow (None: the unoccluded image's most probable class); out of range
    raises ``ChannelOutOfRange``. ``patch``, ``stride``: the square's side
    and step in pixels; positions are ``0, stride, 2·stride, …`` plus one
    flush with the far border (``patch_positions``), so a 224-pixel image with
    ``patch=32, stride=8`` gives 25 × 25 positions. ``fill``: what the patch
    shows, in the model's (normalised) input space: None is 0, the dataset's
    mean colour (grey); a number is that value in every channel; a tensor
    shaped like the input supplies each pixel (``fill`` = the image itself
    changes nothing). ``batch_size`` occluded copies per forward pass.
    ``on_batch(partial_map)`` is called after each batch, e.g. to draw the
    map filling in. ``incremental``: recompute in each copy only the part
    of every activation its patch changes (``cnnviz.incremental``; exact,
    about 2.4× faster for ResNet-18 at 224² with a 32-pixel patch on a
    2-core CPU); it is used when the model can be traced by ``torch.fx`` and,
    on the CPU, a patch saves at least 40 % of the work (``WORTH_IT``); on a
    GPU the first batch is run both ways and the faster kept
    (``MEASURED_DEVICES``). Otherwise every copy runs through the whole
    network. ``incremental=False`` always runs them whole.
    Should incremental inference fail on a model, the map is still computed,
    from whole runs, with a ``RuntimeWarning`` saying so.

    Returns an ``OcclusionMap`` (all positions done). The model is run in eval
    mode without gradients; its train/eval flags are restored and no hook is
    added.
    """
    result = None
    with closing(occlusion_steps(model, image, target=target, patch=patch, stride=stride, fill=fill,
                                 batch_size=batch_size, incremental=incremental)) as steps:
        for result in steps:
            if on_batch is not None:
                on_batch(result)
    return result
