"""Building blocks shared by the figure builders: number formatting, heatmaps, upright square axes."""
import numpy as np
import plotly.graph_objects as go

from cnnviz.plot import DIVERGING


def _fmt(v):
    """A number as the lectures print it: integers without decimals, others to 2 places."""
    return f"{int(round(v))}" if float(v).is_integer() else f"{v:.2f}"


def _square_axes(fig, row=None, col=None):
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=row, col=col)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x" if row is None else None, constrain="domain", row=row, col=col)


def _heatmap(values, *, signed, colorscale=None, showscale=False, text=True, zmin=None, zmax=None):
    v = np.asarray(values, dtype=float)
    kw = dict(z=v, showscale=showscale, xgap=1, ygap=1, hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>")
    if signed:
        m = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 1.0
        kw.update(colorscale=colorscale or DIVERGING, zmid=0, zmin=-(m or 1), zmax=m or 1)
    else:
        kw.update(colorscale=colorscale or "gray", zmin=zmin, zmax=zmax)
    if text:
        kw.update(text=[[("" if np.isnan(x) else _fmt(x)) for x in row] for row in v],
                  texttemplate="%{text}", textfont=dict(size=16))
    return go.Heatmap(**kw)
