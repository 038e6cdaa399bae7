"""Figures of chapter 13: transformations on photos, the PCA colour axes in the pixel cloud, label
preservation, augmentation in training, and where augmentation runs. Interactive with no kernel."""
import base64

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from cnnviz.augmentation import AUGMENTATIONS, augment, random_transform
from cnnviz.plot import style

__all__ = ["transformation_grid_figure", "augmentation_gallery_figure", "pca_cloud_figure", "preservation_figure",
           "training_curves_figure", "throughput_figure", "mosaic", "to_uint8"]


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (N, C, H, W) floats in [0, 1] → uint8 (…, H, W, 3); a grey image is repeated in R, G, B."""
    t = t.detach().clamp(0, 1)
    if t.shape[-3] == 1:
        t = t.expand(*t.shape[:-3], 3, *t.shape[-2:])
    return (t.movedim(-3, -1) * 255).round().to(torch.uint8).numpy()


def _jpeg_uri(arr: np.ndarray, quality: int = 80) -> str:
    from cnnviz.imaging import jpeg_bytes

    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(arr, quality=quality)).decode()


def mosaic(tiles: np.ndarray, cols: int, *, border: int = 4, colours=None) -> np.ndarray:
    """One picture of ``tiles`` (N, H, W, 3) uint8, ``cols`` to a row, each framed by ``border`` pixels of its
    colour from ``colours`` (N RGB triples; white where None)."""
    n, h, w, _ = tiles.shape
    rows = -(-n // cols)
    b = border
    out = np.full((rows * (h + 2 * b), cols * (w + 2 * b), 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + 2 * b), c * (w + 2 * b)
        if colours is not None and colours[i] is not None and b:   # the frame only: four strips
            bottom, right = top + h + 2 * b, left + w + 2 * b
            for rows_, cols_ in ((slice(top, top + b), slice(left, right)), (slice(bottom - b, bottom),
                                 slice(left, right)), (slice(top, bottom), slice(left, left + b)),
                                 (slice(top, bottom), slice(right - b, right))):
                out[rows_, cols_] = colours[i]
        out[top + b:top + b + h, left + b:left + b + w] = tiles[i]
    return out


def transformation_grid_figure(image: torch.Tensor, examples, *, columns: int = 4, title: str = None,
                               tile: int = 150) -> go.Figure:
    """One tile per ``(key, params)`` of ``examples``: ``image`` transformed deterministically, titled with the
    transformation and its parameters."""
    rows = -(-len(examples) // columns)
    names = [f"{AUGMENTATIONS[k].label}<br>{', '.join(f'{n} {v:g}' for n, v in p.items())}" for k, p in examples]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=names, horizontal_spacing=0.02,
                        vertical_spacing=0.12 / rows * 2)
    for i, (k, p) in enumerate(examples):
        fig.add_trace(go.Image(source=_jpeg_uri(to_uint8(augment(image, k, **p))), hoverinfo="skip"),
                      row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for a in fig.layout.annotations:
        a.font.size = 13
    return style(fig, title=title, height=rows * (tile + 60) + (60 if title else 20))


def augmentation_gallery_figure(image: torch.Tensor, classifier, levels: dict, *, draws: int = 7, seed: int = 0,
                                title: str = None, height: int = 340) -> go.Figure:
    """The static augmentation explorer: a menu of transformations and a magnitude slider; each state shows the
    image transformed at that magnitude (first tile) and ``draws`` random draws of the random form up to it,
    each captioned with ``classifier``'s prediction (the label meter). ``levels``: key → list of parameter
    dicts, one per slider step (the first usually the identity). Every state is a precomputed frame."""
    truth = classifier.probabilities(image[None])[0].argmax().item()
    names = classifier.class_names
    cols = draws + 1
    frames, first = [], None

    def state(key, params, k):
        g = torch.Generator().manual_seed(seed * 1000 + k)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g, device=g.device)))
            t = random_transform(key, **params)
            tiles = [augment(image, key, **params)] + [t(image) for _ in range(draws)]
        probs = classifier.probabilities(torch.stack(tiles))
        pred = probs.argmax(1).tolist()
        kept = sum(p == truth for p in pred[1:])
        captions = [("exactly: " if i == 0 else "") + f"{names[c]} {100 * probs[i, c]:.0f}%" for i, c in enumerate(pred)]
        colours = ["#1b7a1b" if c == truth else "#b00020" for c in pred]
        setting = ", ".join(f"{n} {v:g}" for n, v in params.items())
        head = f"{AUGMENTATIONS[key].label} ({setting}): {kept} of {draws} random draws keep the label '{names[truth]}'"
        frames_rgb = [(27, 122, 27) if c == truth else (176, 0, 32) for c in pred]
        return mosaic(to_uint8(torch.stack(tiles)), cols, border=2, colours=frames_rgb), captions, colours, head

    keys = list(levels)
    img_w = None
    for key in keys:
        for k, params in enumerate(levels[key]):
            arr, captions, colours, head = state(key, params, k)
            img_w = arr.shape[1]
            tile_w = arr.shape[1] / cols
            notes = [dict(x=i * tile_w + tile_w / 2, y=arr.shape[0] + 14, xref="x", yref="y", text=c,
                          showarrow=False, font=dict(size=12, color=col))
                     for i, (c, col) in enumerate(zip(captions, colours))]
            notes.append(dict(x=0, y=-8, xref="x", yref="y", xanchor="left", yanchor="bottom", text=head,
                              showarrow=False, font=dict(size=14)))
            frames.append(go.Frame(name=f"{key}|{k}", data=[go.Image(source=_jpeg_uri(arr))],
                                   layout=dict(annotations=notes, sliders=[_slider(key, levels, k)])))
            if first is None:
                first = (arr, notes, head)
    arr, notes, head = first
    fig = go.Figure(go.Image(source=_jpeg_uri(arr), hoverinfo="skip"), frames=frames)
    buttons = [dict(method="animate", label=AUGMENTATIONS[key].label,
                    args=[[f"{key}|{len(levels[key]) - 1}"], _JUMP]) for key in keys]
    fig.update_layout(annotations=notes, sliders=[_slider(keys[0], levels, 0)],
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.02,
                                        yanchor="bottom")])
    fig.update_xaxes(visible=False, range=[0, img_w])
    fig.update_yaxes(visible=False, range=[arr.shape[0] + 30, -40])
    style(fig, title=title, height=height)
    fig.update_layout(margin=dict(t=90 if title else 50, b=10))
    return fig


_JUMP = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))


def _slider(key, levels, active):
    steps = [dict(method="animate", label=", ".join(f"{v:g}" for v in p.values()) or "0",
                  args=[[f"{key}|{k}"], _JUMP]) for k, p in enumerate(levels[key])]
    return dict(active=active, steps=steps, currentvalue=dict(prefix="magnitude: "), pad=dict(t=20), x=0.0, len=1.0)


def pca_cloud_figure(basis, pixels: torch.Tensor, *, points: int = 3000, title: str = None,
                     height: int = 560) -> go.Figure:
    """The RGB pixel cloud (a random sample of ``pixels`` (3, P) in [0, 1], each point in its own colour) with
    the three principal axes of ``basis`` drawn from the mean, each 2·√λ long."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(pixels.shape[1], generator=g, device=g.device)[:points]
    p = pixels[:, idx].numpy()
    colours = [f"rgb({int(r * 255)},{int(gg * 255)},{int(b * 255)})" for r, gg, b in p.T]
    fig = go.Figure(go.Scatter3d(x=p[0], y=p[1], z=p[2], mode="markers", marker=dict(size=2, color=colours),
                                 name="pixels", hoverinfo="skip"))
    mean = basis.mean.numpy()
    for i, colour in enumerate(("black", "#b00020", "#1f4fb4")):
        v = basis.eigenvectors[:, i].numpy() * 2 * float(basis.eigenvalues[i]) ** 0.5
        ends = np.stack([mean - v, mean + v])
        fig.add_trace(go.Scatter3d(x=ends[:, 0], y=ends[:, 1], z=ends[:, 2], mode="lines",
                                   line=dict(color=colour, width=8),
                                   name=f"axis {i + 1}: λ = {float(basis.eigenvalues[i]):.3g}"))
    fig.update_layout(scene=dict(xaxis_title="red", yaxis_title="green", zaxis_title="blue",
                                 xaxis_range=[0, 1], yaxis_range=[0, 1], zaxis_range=[0, 1], aspectmode="cube"),
                      legend=dict(x=0, y=1))
    return style(fig, title=title, height=height)


def preservation_figure(results: dict, *, title: str = None, xlabel: str = "magnitude",
                        height: int = 440) -> go.Figure:
    """Accuracy against the magnitude of a transformation: ``results`` maps a label to a
    ``cnnviz.augmentation_study.Preservation`` (one line each; hover: the worst class at that magnitude)."""
    fig = go.Figure()
    for label, r in results.items():
        worst = [f"worst class: {r.class_names[int(np.argmin(pc))]} ({100 * pc.min():.0f} %)" for pc in r.per_class]
        fig.add_trace(go.Scatter(x=list(r.values), y=(100 * r.accuracy).tolist(), mode="lines+markers", name=label,
                                 line=dict(width=3), customdata=worst,
                                 hovertemplate=f"{label}, %{{x:g}}: %{{y:.1f}} %<br>%{{customdata}}<extra></extra>"))
    fig.update_yaxes(title_text="test accuracy (%)", range=[0, 100])
    fig.update_xaxes(title_text=xlabel)
    return style(fig, title=title, height=height)


def training_curves_figure(comparison, *, title: str = None, height: int = 600) -> go.Figure:
    """Training error (dashed, on the un-augmented training images) and test error (solid) per epoch, one colour
    per augmentation policy."""
    from plotly.colors import qualitative

    fig = go.Figure()
    for k, (name, c) in enumerate(comparison.curves.items()):
        colour = qualitative.D3[k % len(qualitative.D3)]
        epochs = list(range(1, len(c["test_error"]) + 1))
        fig.add_trace(go.Scatter(x=epochs, y=[100 * e for e in c["test_error"]], mode="lines", name=f"{name}: test",
                                 line=dict(color=colour, width=3)))
        fig.add_trace(go.Scatter(x=epochs, y=[100 * e for e in c["train_error"]], mode="lines",
                                 name=f"{name}: training", line=dict(color=colour, width=2, dash="dash")))
    fig.update_yaxes(title_text="error (%)", range=[0, 40])
    fig.update_xaxes(title_text="epoch")
    style(fig, title=title, height=height)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, font=dict(size=13)))
    return fig


def throughput_figure(throughput, *, title: str = None, height: int = 360) -> go.Figure:
    """Images per second of augmentation through PIL and a ``DataLoader`` against batched on the device."""
    t = throughput
    labels = ["PIL + DataLoader", f"PIL + DataLoader, {t.workers} workers", f"batched on the device ({t.device})",
              "batched, with PCA colour"]
    values = [t.pil_loader, t.pil_workers, t.device_batched, t.device_batched_colour]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"{v:,.0f} images/s" for v in values],
                           textposition="auto", marker_color=["#999999", "#777777", "#2c6fbb", "#1f4f8b"]))
    fig.update_xaxes(type="log", title_text=f"images per second ({t.size}×{t.size}, log scale)")
    fig.update_yaxes(autorange="reversed")
    return style(fig, title=title, height=height)
