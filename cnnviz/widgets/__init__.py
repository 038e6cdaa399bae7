"""ipywidgets views over cnnviz's pure functions (core widgets only: they work on Colab).

Importing ``cnnviz.widgets`` is the only place cnnviz imports ipywidgets.
"""
from cnnviz.widgets._base import lecture
from cnnviz.widgets.architecture_explorer import ArchitectureExplorer
from cnnviz.widgets.attribution_explorer import AttributionExplorer
from cnnviz.widgets.augmentation_explorer import AugmentationExplorer
from cnnviz.widgets.conv_explorer import ConvExplorer
from cnnviz.widgets.feature_map_explorer import FeatureMapExplorer
from cnnviz.widgets.filter_gallery import FilterGallery
from cnnviz.widgets.inception_explorer import InceptionCostExplorer
from cnnviz.widgets.kernel_editor import KernelEditor
from cnnviz.widgets.live_training import LiveTraining
from cnnviz.widgets.occlusion_explorer import OcclusionExplorer
from cnnviz.widgets.receptive_field_explorer import ReceptiveFieldExplorer
from cnnviz.widgets.signal_flow_explorer import SignalFlowExplorer
from cnnviz.widgets.transfer_explorer import TransferExplorer

__all__ = ["KernelEditor", "ConvExplorer", "ReceptiveFieldExplorer", "ArchitectureExplorer", "InceptionCostExplorer",
           "LiveTraining", "SignalFlowExplorer", "FeatureMapExplorer", "FilterGallery", "OcclusionExplorer", "AttributionExplorer",
           "AugmentationExplorer", "TransferExplorer", "lecture"]
