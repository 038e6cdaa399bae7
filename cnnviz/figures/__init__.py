"""Plotly figure builders: take data, return a styled ``go.Figure``, never show it.

One module per chapter topic; everything public is re-exported here (except
``cnnviz.figures.augmentation``, which needs torchvision: import it from there), so
``from cnnviz import figures; figures.kernel_gallery(...)`` works. Every figure
is interactive with no kernel (sliders and buttons switch between precomputed
states), so the static book keeps what the live widgets do.
"""
from cnnviz.figures.architecture import (architecture_figure, architecture_svg, diagram_units, human,
                                         inception_cost_figure, inception_cost_svg, inception_presets, kind_colour,
                                         model_zoo_figure, unit_label)
from cnnviz.figures.comparison import accuracy_chart, model_costs
from cnnviz.figures.arithmetic import conv_arithmetic_text, conv_explorer_figure, conv_frames
from cnnviz.figures.initialisation import (batch_dependence_figure, norm_axes_figure, signal_flow_figure,
                                           signal_flow_svg, std_by_layer_figure, trainability_figure)
from cnnviz.figures.filtering import (DISPLAY_FOR_PRESET, conv_steps, heatmap, kernel_gallery, matrices, matrix,
                                      rgb_channels)
from cnnviz.figures.training import gradient_figure, race_figure, race_svg, race_table
from cnnviz.figures.visualising import (attribution_figure, example_grid_figure, feature_map_figure,
                                        filter_grid_figure, occlusion_figure, projection_figure, sanity_figure,
                                        top_patches_figure)
from cnnviz.figures.transfer import (layer_probe_figure, learning_curves_figure, manifold_figure, table_html,
                                     transfer_explorer_figure, transfer_svg, transfer_table_figure)
from cnnviz.figures.receptive import erf_figure, erf_image, growth_chart, receptive_field_figure, rf_overlay

__all__ = ["matrix", "matrices", "heatmap", "rgb_channels", "conv_steps", "kernel_gallery", "DISPLAY_FOR_PRESET",
           "conv_frames", "conv_arithmetic_text", "conv_explorer_figure",
           "rf_overlay", "growth_chart", "erf_image", "receptive_field_figure", "erf_figure",
           "diagram_units", "architecture_svg", "architecture_figure", "model_zoo_figure", "human", "kind_colour",
           "unit_label",
           "inception_presets", "inception_cost_svg", "inception_cost_figure",
           "accuracy_chart", "model_costs", "race_figure", "race_svg", "race_table", "gradient_figure",
           "signal_flow_figure", "signal_flow_svg", "std_by_layer_figure", "trainability_figure", "norm_axes_figure",
           "batch_dependence_figure", "filter_grid_figure", "example_grid_figure", "feature_map_figure", "projection_figure", "top_patches_figure",
           "occlusion_figure", "attribution_figure", "sanity_figure",
           "transfer_table_figure", "learning_curves_figure", "layer_probe_figure", "manifold_figure",
           "transfer_explorer_figure", "transfer_svg", "table_html"]
