"""ipywidgets views over cnnviz's pure functions (core widgets only: they work on Colab).

Importing ``cnnviz.widgets`` is the only place cnnviz imports ipywidgets.
"""
from cnnviz.widgets.kernel_editor import KernelEditor

__all__ = ["KernelEditor"]
