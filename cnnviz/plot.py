"""One look and one display path for every plotly figure cnnviz makes.

Figure builders (``cnnviz.figures``) return ``go.Figure`` objects styled with
``style``; notebooks and chapters show them with ``show``. ``show`` picks the
output that works where it runs:

* in the book build (``CNNVIZ_BOOK=1``, set by ``make book``), HTML that uses
  the one local ``plotly.min.js`` the book serves: myst-nb drops plotly's own
  JSON output, and nothing may come from a CDN;
* elsewhere (JupyterLab, Colab, VS Code), plotly's own renderer.
"""
import os

import plotly.graph_objects as go

__all__ = ["style", "show", "as_html", "in_book_build", "DIVERGING", "SEQUENTIAL", "FONT_SIZE"]

#: Signed values (filter outputs, kernels): blue below zero, white at zero, red above.
DIVERGING = "RdBu_r"
#: Unsigned maps (activations, heat maps): perceptually uniform.
SEQUENTIAL = "Viridis"
#: Base font size: readable from the back of a lecture hall.
FONT_SIZE = 16


def in_book_build() -> bool:
    """True while ``make book`` executes the chapters."""
    return os.environ.get("CNNVIZ_BOOK", "") not in ("", "0")


def style(fig: go.Figure, *, title=None, height=None) -> go.Figure:
    """Apply the cnnviz look in place (white background, large type, tight margins); return ``fig``."""
    fig.update_layout(
        template="plotly_white",
        font=dict(size=FONT_SIZE, family="Helvetica, Arial, sans-serif"),
        margin=dict(l=20, r=20, t=70 if title else 30, b=20),
        hoverlabel=dict(font_size=FONT_SIZE),
    )
    if title is not None:
        fig.update_layout(title=dict(text=title, x=0.02, xanchor="left"))
    if height is not None:
        fig.update_layout(height=height)
    return fig


def as_html(fig: go.Figure, *, div_id=None) -> str:
    """The figure as an HTML ``<div>`` that expects ``window.Plotly`` to be loaded by the page."""
    return fig.to_html(
        full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
        auto_play=False,  # animations start when the reader presses play, not on load
        config={"responsive": True, "displaylogo": False},
    )


class _BookFigure:
    """Displays as HTML only, so myst-nb embeds it in the static page."""

    def __init__(self, fig):
        self.fig = fig

    def _repr_html_(self):
        return as_html(self.fig)


def show(fig: go.Figure):
    """Display ``fig`` in a notebook or in the book (see the module docstring)."""
    from IPython.display import display

    display(_BookFigure(fig) if in_book_build() else fig)
