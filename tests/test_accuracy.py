"""cnnviz.accuracy: every result names a registered model and a real source; torchvision's come from the
weights' metadata, the papers' are the printed error rates; the Keras table's counts are cnnviz's plus
batch norm's running statistics (and Keras's ResNet conv biases)."""
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnnviz import accuracy, models
from cnnviz.accuracy import KERAS_TABLE, ImageNetResult, imagenet_results, result, results_for, source_label
from cnnviz.summaries import count_params

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"
RESULTS = imagenet_results()


def _bib_keys():
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), flags=re.M))


def _meta(name):
    with torch.device("meta"):
        return models.get(name)


# ----------------------------------------------------------------------------- well-formed

def test_every_result_names_a_registered_model_and_a_known_source():
    registered, keys = set(models.available()), _bib_keys()
    assert RESULTS
    for r in RESULTS:
        assert isinstance(r, ImageNetResult)
        assert r.model in registered, r
        assert r.source == "torchvision" or r.source in keys, r.source
        assert r.where and r.protocol, r


@pytest.mark.parametrize("r", RESULTS, ids=lambda r: f"{r.model}-{r.where}")
def test_accuracies_are_percentages(r):
    assert r.top1 is not None or r.top5 is not None
    for value in (r.top1, r.top5):
        assert value is None or 0 < value < 100
    if r.top1 is not None and r.top5 is not None:
        assert r.top1 < r.top5  # the right class among five guesses is easier than the best guess
    assert r.crops in (1, 10, 144, None) and r.models >= 1
    assert r.single_model == (r.models == 1)


def test_results_follow_the_course_order_torchvision_first():
    order = {n: k for k, n in enumerate(models.available())}
    keys = [(order[r.model], r.source != "torchvision") for r in RESULTS]
    assert keys == sorted(keys)


def test_results_are_a_fresh_list():
    mine = imagenet_results()
    mine.clear()
    assert imagenet_results() == RESULTS


# ----------------------------------------------------------------------------- torchvision: never typed in

def test_torchvision_results_are_the_weights_metadata():
    tv = [r for r in RESULTS if r.source == "torchvision"]
    assert {models.info(r.model).weights for r in tv} == {models.info(n).weights for n in models.available()
                                                         if models.info(n).weights is not None}
    assert len(tv) == len({models.info(r.model).weights for r in tv})  # one result per weights file
    for r in tv:
        weights = models.info(r.model).weights
        metrics = weights.meta["_metrics"]["ImageNet-1K"]
        assert (r.top1, r.top5) == (metrics["acc@1"], metrics["acc@5"])
        assert weights.name in r.where and r.crops == 1 and r.models == 1
        preset = weights.transforms()
        assert f"{preset.crop_size[0]}×{preset.crop_size[0]}" in r.protocol
        assert str(preset.resize_size[0]) in r.protocol


@pytest.mark.parametrize("name", [n for n in models.available() if models.info(n).weights is not None])
def test_every_model_with_weights_has_their_result(name):
    r = result(name)
    assert r.source == "torchvision" and models.info(r.model).weights is models.info(name).weights


def test_twins_share_one_result():
    assert result("resnet18_tv") == result("resnet18") and result("resnet18").model == "resnet18"
    assert results_for("resnet34_tv") == [result("resnet34", source="torchvision")]


# ----------------------------------------------------------------------------- papers: the printed errors

def test_paper_results_are_100_minus_the_printed_errors():
    for row in accuracy._PAPER_ERRORS:
        model, top1_err, top5_err, source, where = row[:5]
        r = next(r for r in RESULTS if r.model == model and r.where == where)
        assert r.top1 == (None if top1_err is None else pytest.approx(100 - top1_err, abs=1e-9))
        assert r.top5 == (None if top5_err is None else pytest.approx(100 - top5_err, abs=1e-9))
        assert r.source == source


@pytest.mark.parametrize("name, source", [("alexnet_2gpu", "krizhevsky2012imagenet"), ("googlenet", "szegedy2015going"),
                                          ("densenet264", "huang2017densely")])
def test_more_crops_or_networks_never_lower_the_accuracy(name, source):
    rs = [r for r in results_for(name) if r.source == source]
    assert len(rs) >= 2
    for a, b in zip(rs, rs[1:]):  # table order: each setting adds crops or networks
        assert (a.crops or 0, a.models) <= (b.crops or 0, b.models)
        assert (b.top5 or 0) > (a.top5 or 0)


def test_headline_result_is_a_single_model():
    assert result("alexnet_2gpu").models == 1 and result("alexnet_2gpu").crops == 10
    g = result("googlenet")
    assert (g.top1, g.crops, g.models) == (None, 1, 1)
    assert result("densenet264").crops == 1
    assert result("resnet34").source == "torchvision"
    assert result("resnet34", source="he2016deep").crops == 10
    assert result("resnet50").source == "he2016deep"  # v1 has no weights; v1.5 (resnet50_tv) has


@pytest.mark.parametrize("name, words", [("nin", "CIFAR-10"), ("lenet5", "MNIST"), ("alexnet", "alexnet_2gpu"),
                                         ("resnet20", "CIFAR"), ("densenet_bc_100", "CIFAR")])
def test_models_without_a_result_say_why(name, words):
    assert results_for(name) == []
    with pytest.raises(LookupError, match=words):
        result(name)


def test_errors():
    with pytest.raises(ValueError, match="resnet50"):
        result("resnet05")  # not registered: the registry suggests names
    with pytest.raises(LookupError, match="torchvision"):
        result("googlenet", source="torchvision")


def test_source_label():
    assert source_label("he2016deep") == "He 2016"
    assert source_label("krizhevsky2012imagenet") == "Krizhevsky 2012"
    assert source_label("torchvision") == "torchvision"


# ----------------------------------------------------------------------------- the lecture's Keras table

@pytest.mark.parametrize("row", [r for r in KERAS_TABLE if r.model], ids=lambda r: r.keras_name)
def test_keras_counts_are_ours_counted_the_keras_way(row):
    """Oracle: the lecture's table, to the parameter. The rules are independent of the row: running statistics
    for every network, plus conv biases for Keras's ResNets, minus γ and the auxiliary classifier for its
    InceptionV3."""
    c = accuracy.keras_count(row)
    net = _meta(row.model)
    assert c.learned == count_params(net)
    assert c.running == sum(m.running_mean.numel() + m.running_var.numel() for m in net.modules()
                            if isinstance(m, nn.BatchNorm2d)) - _aux_running(net)
    assert c.total == row.params


def _aux_running(net):
    aux = getattr(net, "AuxLogits", None)
    return 0 if aux is None else sum(m.running_mean.numel() + m.running_var.numel() for m in aux.modules()
                                     if isinstance(m, nn.BatchNorm2d))


# Keras's graphs counted by hand from keras-applications' code: layer objects on the longest path, the input
# included. MobileNet: input, conv1_pad, conv1, bn, relu; 13 blocks of depthwise, bn, relu, pointwise, bn, relu,
# plus ZeroPadding2D before the 4 strided ones; GAP, Reshape, Dropout, conv_preds, Activation, Reshape.
# MobileNetV2: input, pad, conv, bn, relu; block 0: depthwise, bn, relu, project, bn; 16 blocks of expand, bn,
# relu, depthwise, bn, relu, project, bn, plus 4 pads and 10 additions; conv, bn, relu, GAP, dense.
# ResNet50: input, pad, conv, bn, relu, pad, pool; 16 blocks of conv, bn, relu, conv, bn, relu, conv, bn, add,
# relu; GAP, dense. ResNet50V2: input, pad, conv, pad, pool; 16 blocks of bn, relu, conv, bn, relu, pad, conv,
# bn, relu, conv, add; bn, relu, GAP, dense. DenseNet121: input, pad, conv, bn, relu, pad, pool; 58 layers of
# bn, relu, conv, bn, relu, conv, concatenate; 3 transitions of bn, relu, conv, pool; bn, relu, GAP, dense.
BY_HAND = {"MobileNet": 5 + 13 * 6 + 4 + 6, "MobileNetV2": 5 + 5 + 16 * 8 + 4 + 10 + 5,
           "ResNet50": 7 + 16 * 10 + 2, "ResNet50V2": 5 + 16 * 11 + 4, "DenseNet121": 7 + 58 * 7 + 3 * 4 + 4,
           # not by hand: Keras 3.15's own NASNetMobile, its longest path over model.layers (run elsewhere: Keras is
           # not a dependency); Keras 3 gave the same as this test for every row above but MobileNet and MobileNetV2,
           # whose heads and stem changed after keras-applications 1.0.8
           "NASNetMobile": 214}


@pytest.mark.parametrize("row", [r for r in KERAS_TABLE if r.model], ids=lambda r: r.keras_name)
def test_keras_depths_are_layers_on_the_longest_path(row):
    """Oracle: the lecture's table where its depth counts layer objects (Xception, VGG-16/19, InceptionV3,
    InceptionResNetV2, to the layer), hand counts of Keras's code for five others (``BY_HAND``), and the weight
    layers of the name for the DenseNets, whose table depth counts those instead."""
    d = accuracy.keras_depth(row)
    if row.keras_name in ("Xception", "VGG16", "VGG19", "InceptionV3", "InceptionResNetV2"):
        assert d.keras == row.depth
    if row.keras_name in BY_HAND:
        assert d.keras == BY_HAND[row.keras_name]
    if row.keras_name.startswith("DenseNet"):
        from cnnviz.figures import comparison
        assert row.depth == comparison.depth(row.model).path != d.keras
    if row.keras_name.startswith("ResNet"):            # the same stem and head, ten (V2: eleven) layers a block
        blocks = sum(type(m).__name__.startswith(("Bottleneck", "PreActBottleneck")) for m in _meta(row.model).modules())
        assert blocks == {"50": 16, "101": 33, "152": 50}[row.keras_name[6:9].rstrip("V")]
        assert d.keras == (9 + 10 * blocks if row.keras_name.endswith(("50", "101", "152")) else 9 + 11 * blocks)


def test_keras_depth_rules_each_matter(monkeypatch):
    """The traced graph alone does not give Keras's count: VGG-16's chain has a node per module (and the
    flatten), InceptionV3 without its rules counts torchvision's input transform and dropout."""
    rows = {r.keras_name: r for r in KERAS_TABLE}
    vgg = accuracy.keras_depth(rows["VGG16"])
    net = _meta("vgg16")
    leaves = [m for m in net.modules() if not list(m.children())]
    assert vgg.traced == 1 + len(leaves) + 1          # input, every module, the flatten
    monkeypatch.setitem(accuracy.KERAS_GRAPHS, "InceptionV3", accuracy.KerasGraph())
    assert accuracy.keras_depth(rows["InceptionV3"]).keras == rows["InceptionV3"].depth + 5 + 1
    with pytest.raises(LookupError, match="NASNetMobile"):
        accuracy.keras_depth(accuracy.KerasRow(None, "NASNetMobile", 1, 0.1, 0.2, 1, None))


def test_keras_rows_are_the_lectures_and_well_formed():
    assert len(KERAS_TABLE) == 17 and len({r.keras_name for r in KERAS_TABLE}) == 17
    assert all(r.model for r in KERAS_TABLE)             # cnnviz builds every row's network, NASNetMobile last
    for row in KERAS_TABLE:
        models.info(row.model)
        assert 0 < row.top1 < row.top5 < 1
    # the file sizes are the parameters at 4 bytes each (MiB), give or take the file's overhead (NASNetMobile's
    # file is 13 % larger than its weights)
    for row in KERAS_TABLE:
        assert row.params * 4 / 2 ** 20 == pytest.approx(row.size_mb, rel=0.15)
    with pytest.raises(LookupError, match="NASNetMobile"):                  # a row without a network
        accuracy.keras_count(accuracy.KerasRow(None, "NASNetMobile", 23, 0.744, 0.919, 5_326_716, None))


# ----------------------------------------------------------------------------- other published figures

def test_quotes_are_well_formed_and_cite_known_sources():
    keys = _bib_keys()
    assert accuracy.QUOTES and len(accuracy.QUOTES) == len(accuracy._QUOTES)      # no key used twice
    for key, q in accuracy.QUOTES.items():
        assert q.key == key and q.source in keys and q.where and q.what, q
        assert re.fullmatch(r"\d{1,3}(,\d{3})*(\.\d+)?|\d+\.\d+", q.printed), q.printed
        if q.unit == "%":
            assert 0 < q.value < 100
        assert str(q).startswith(q.printed)
    assert str(accuracy.quote("alexnet_ilsvrc2010_top5")) == "17.0 %"        # as printed, the trailing 0 kept
    assert accuracy.quote("imagenet_images").value == 15e6
    with pytest.raises(KeyError, match="known ones are"):
        accuracy.quote("lenet_imagenet")


def test_quoted_rankings_are_consistent():
    """The quotes agree with each other where the papers overlap: each ILSVRC winner better than the last,
    the ensemble fusion better than each of its members, the winners in He et al.'s Table 5 as in their papers."""
    q = lambda k: accuracy.quote(k).value  # noqa: E731
    winners = [q("alexnet_ilsvrc2012_top5"), q("clarifai_ilsvrc2013_top5"), q("googlenet_ilsvrc2014_top5"),
               q("t5_resnet_ilsvrc15"), q("shao_fusion_test")]
    assert winners == sorted(winners, reverse=True)
    members = [v for k, v in ((k, q(k)) for k in accuracy.QUOTES) if k.startswith("shao_") and "fusion" not in k]
    assert len(members) == 5 and q("shao_fusion_val") < min(members)
    assert abs(q("t5_googlenet_ilsvrc14") - q("googlenet_ilsvrc2014_top5")) < 0.02   # 6.66 vs 6.67: rounding
    assert abs(q("t5_vgg_ilsvrc14") - q("vgg_ilsvrc2014_top5")) < 0.05


def test_keras_figures_stand_in_only_where_nothing_else_measured():
    """NASNet-Mobile's and the Keras-built ResNet V2s' only results are the lecture's Keras rows (the same networks,
    Keras's weights); a network with a result of its own (torchvision's, its paper's) keeps it."""
    row = next(r for r in KERAS_TABLE if r.keras_name == "NASNetMobile")
    r = accuracy.result("nasnet_mobile")
    assert (r.top1, r.top5) == (pytest.approx(100 * row.top1), pytest.approx(100 * row.top5))
    assert (r.source, r.crops, accuracy.source_label(r.source)) == ("kerasapplications", None, "Keras applications")
    assert "NASNetMobile" in r.where
    keras_sourced = {x.model for x in accuracy.imagenet_results() if x.source == "kerasapplications"}
    assert keras_sourced == {"nasnet_mobile", "resnet50_v2", "resnet101_v2", "resnet152_v2"}
