"""The numbers behind chapters 7 (VGG) and 8 (NiN, GoogLeNet), and their explanations of the lecture's slips.

The chapters compute everything at build time; these tests pin the facts their prose relies on
(which lecture figure is wrong, and why), so that a change in cnnviz that breaks an explanation
fails here and not silently in the book.
"""
import pytest
import torch
import torch.nn as nn

from cnnviz import layers, models, summary
from cnnviz.models import googlenet as inception
from cnnviz.models.nin import mlpconv
from cnnviz.summaries import count_params


def _meta(name):
    with torch.device("meta"):
        return models.get(name)


@pytest.fixture(scope="module")
def vgg16():
    return summary(_meta("vgg16"), (3, 224, 224))


def test_vgg16_lecture_table(vgg16):
    main = vgg16.filter(kinds=("Conv2d", "MaxPool2d", "Linear")).rows
    assert len(main) == 13 + 5 + 3
    weights = sum(r.params - r.output_shape[0] for r in main if r.params)
    assert weights == 138_344_128  # the slide counts weights only ("not counting biases")
    assert vgg16.total_params == 138_357_544
    # the slide's rows add up to 15.2 M values (61 MB), not its "24M * 4 bytes ~ 96MB"
    memory = 3 * 224 * 224 + sum(r.activations for r in main)
    assert memory == 15_237_608
    assert round(memory * 4 / 1e6) == 61
    # the homework's total is the true one plus 65,664 given by mistake to a pooling layer
    assert all(r.params == 0 for r in main if r.kind == "MaxPool2d")
    assert str(vgg16.total_params + 65_664).startswith("13842320")
    assert round(vgg16.param_bytes / 2**20) == 528  # Keras's "528 MB" is MiB of float32 weights


def test_vgg16_memory_and_parameters_split(vgg16):
    main = vgg16.filter(kinds=("Conv2d", "MaxPool2d", "Linear")).rows
    fc6 = [r for r in main if r.kind == "Linear"][0]
    assert fc6.params == 7 * 7 * 512 * 4096 + 4096
    assert fc6.params / vgg16.total_params > 0.7
    assert vgg16.total_macs == 15_470_264_320
    assert [r.receptive_field for r in main if r.kind == "Conv2d"][-1] == 196  # conv5_3


def test_lecture_inception_example():
    naive = inception.inception_cost(256, 28, 28, 128, None, 192, None, 96, None)
    assert naive.out_channels == 672 and round(naive.total.macs / 1e6) == 854
    bottleneck = inception.inception_cost(256, 28, 28, 128, 64, 192, 64, 96, 64)
    assert bottleneck.out_channels == 480 and round(bottleneck.total.macs / 1e6) == 271
    # the slide's "358M" is the right total plus the 3×3 convolution's term a second time
    assert round((bottleneck.total.macs + layers.conv_macs(64, 28, 28, 192, 3, p=1)) / 1e6) == 358


def test_googlenet_depth_and_parameters():
    with torch.device("meta"):
        net, net_aux = inception.googlenet(aux_logits=False), inception.googlenet()
    convs = lambda m: sum(isinstance(c, nn.Conv2d) for c in m.modules())  # noqa: E731
    depth = sum(max(map(convs, getattr(net, n).children())) if n.startswith("inception") else convs(getattr(net, n))
                for n in inception.TABLE1 if n != "linear") + 1
    assert depth == 22
    alexnet = count_params(_meta("alexnet"))
    assert 8 < alexnet / count_params(net) < 10  # not the lecture's 12×
    assert 4 < alexnet / count_params(net_aux) < 5
    with torch.device("meta"):
        out = net_aux.train()(torch.empty(2, 3, 224, 224))
    assert [tuple(o.shape) for o in out] == [(2, 1000)] * 3
    assert tuple(net_aux.eval()(torch.empty(2, 3, 224, 224, device="meta")).shape) == (2, 1000)


def test_homework_nin_is_the_small_ten_map_variant():
    with torch.device("meta"):
        homework = nn.Sequential(
            mlpconv(3, 96, 11, stride=4), nn.MaxPool2d(3, 2), mlpconv(96, 256, 5), nn.MaxPool2d(3, 2),
            mlpconv(256, 384, 3), nn.MaxPool2d(3, 2), nn.Dropout(0.5), mlpconv(384, 10, 3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 1000))
    s = summary(homework, (3, 224, 224))
    assert s.total_params == 2_026_398  # the sum of the homework's table
    sides = [r.output_shape[1] for r in s.rows if r.kind == "MaxPool2d" or r.name.endswith(".conv")]
    assert sides == [54, 26, 22, 10, 8, 3, 1]
    assert count_params(_meta("nin")) == 7_595_176
