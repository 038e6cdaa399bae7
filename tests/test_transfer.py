"""Transfer learning (chapter 14): features, probes, heads, freezing and fine-tuning, the measured table, the
data sets and their fall-backs, held to oracles."""
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz import shapes, transfer, transfer_study as ts
from cnnviz.models.shapesnet import shapesnet
from cnnviz.probe import capture, eval_mode
from cnnviz.transfer import TransferError
from cnnviz.train import TensorData, Trainer


def _net(batch_norm=False, seed=0, classes=6):
    torch.manual_seed(seed)
    model = shapesnet(batch_norm=batch_norm, widths=(8, 8, 8, 8), num_classes=classes)
    return model.eval()


def _images(n=20, seed=0):
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _data(n_train=24, n_test=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = torch.arange(n_train + n_test) % classes
    return TensorData.from_arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                                  classes=[f"c{k}" for k in range(classes)])


@pytest.fixture(scope="module")
def source():
    return ts._shapes_source()


# ----------------------------------------------------------------------------- features


def test_features_in_batches_equal_one_full_forward_pass():
    model, x = _net(), _images(23)
    whole = transfer.extract_features(model, x, "features.relu3", batch_size=1000)
    batched = transfer.extract_features(model, x, "features.relu3", batch_size=5)
    assert whole.shape == (23, 8 * 8 * 8) and torch.allclose(whole, batched, atol=1e-6)
    pre = model.cnnviz_preprocess if hasattr(model, "cnnviz_preprocess") else None
    assert pre is None  # the untrained net normalises with ImageNet's statistics
    with capture(model, "features.relu3") as out, eval_mode(model), torch.no_grad():
        model(transfer._normalised(x, model, "cpu"))
    assert torch.allclose(out["features.relu3"].flatten(1), whole, atol=1e-6)


def test_features_train_a_torch_classifier():
    """The features are ordinary tensors (not inference tensors): a torch layer can be trained on them."""
    feats = transfer.extract_features(_net(), _images(6), "classifier.flatten")
    head = nn.Linear(feats.shape[1], 2)
    loss = nn.functional.cross_entropy(head(feats), torch.arange(6) % 2)
    loss.backward()
    assert head.weight.grad is not None and not feats.requires_grad


def test_several_layers_in_one_pass_and_pooling():
    model, x = _net(), _images(9)
    both = transfer.extract_features(model, x, ["features.relu1", "classifier.flatten"], pool="avg")
    assert torch.allclose(both["features.relu1"], transfer.extract_features(model, x, "features.relu1").view(
        9, 8, -1).mean(2), atol=1e-6)
    top = transfer.extract_features(model, x, "classifier.flatten")
    assert torch.allclose(both["classifier.flatten"], top, atol=1e-6)
    grid = transfer.extract_features(model, x, "features.relu4", pool=2)
    assert grid.shape == (9, 8 * 4)
    # the top layer is the average over space of the last stage
    assert torch.allclose(transfer.extract_features(model, x, "features.relu4", pool="avg"), top, atol=1e-5)


def test_extraction_leaves_no_hook_and_restores_the_mode():
    model = _net()
    model.train()
    transfer.extract_features(model, _images(4), "features.relu2")
    assert model.training and all(m.training for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(TransferError, match="features.relu2"):  # a wrong name lists the valid ones
        transfer.extract_features(model, _images(4), "features.relu9")
    assert not any(m._forward_hooks for m in model.modules())


def test_cache_returns_the_same_features_and_follows_the_weights(tmp_path):
    model, x = _net(), _images(10)
    first = transfer.cached_features(model, x, "features.relu2", pool="avg", cache=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    again = transfer.cached_features(model, x, "features.relu2", pool="avg", cache=tmp_path)
    assert torch.equal(first, again) and len(list(tmp_path.glob("*.pt"))) == 1
    with torch.no_grad():
        model.features.conv1.weight.add_(0.5)
    changed = transfer.cached_features(model, x, "features.relu2", pool="avg", cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2 and not torch.allclose(changed, first)
    assert torch.allclose(changed, transfer.extract_features(model, x, "features.relu2", pool="avg"))
    # a damaged file is recomputed, with a warning
    newest = max(tmp_path.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    newest.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="damaged"):
        fixed = transfer.cached_features(model, x, "features.relu2", pool="avg", cache=tmp_path)
    assert torch.equal(fixed, changed)


# ----------------------------------------------------------------------------- probes


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[6.0, 0, 0], [0, 6.0, 0], [0, 0, 6.0]])
    y = torch.arange(90) % 3
    x = centres[y] + 0.5 * torch.randn(90, 3, generator=g)
    probe = transfer.linear_probe(x[:60], y[:60], x[60:], y[60:])
    assert probe.accuracy == 1.0 and probe.train_accuracy == 1.0 and probe.features == 3


def test_probe_in_the_training_span_is_the_same_classifier():
    """More features than images: fitting on the principal axes (the probe's shortcut) gives the same
    predictions as fitting the raw standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 400, generator=g), torch.arange(60) % 3
    x[:, :5] += 2 * torch.nn.functional.one_hot(y, 5).float()
    probe = transfer.linear_probe(x[:40], y[:40], x[40:], y[40:])
    plain = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=20000, tol=1e-8))
    plain.fit(x[:40].numpy(), y[:40].numpy())
    shortcut = probe.classifier
    a = shortcut.decision_function(x[40:].numpy())
    b = plain.decision_function(x[40:].numpy())
    assert np.allclose(a, b, atol=2e-2 * np.abs(b).max())
    assert (probe.predictions.numpy() == plain.predict(x[40:].numpy())).all()


def test_probe_refuses_bad_features():
    x, y = torch.randn(10, 4), torch.arange(10) % 2
    with pytest.raises(TransferError, match="one label per"):
        transfer.linear_probe(x, y[:5], x, y)
    with pytest.raises(TransferError, match="only one class"):
        transfer.linear_probe(x, torch.zeros(10), x, y)
    with pytest.raises(TransferError, match="NaN"):
        transfer.linear_probe(x * float("nan"), y, x, y)
    with pytest.raises(TransferError, match="same layer"):
        transfer.linear_probe(x, y, x[:, :3], y)


def test_head_from_probe_makes_the_network_compute_the_probe(source):
    x, y = ts.target_images("similar", 6, seed=3)
    top = ts.top_layer(source)
    feats = transfer.extract_features(source, x, top)
    probe = transfer.linear_probe(feats[::2], y[::2], feats[1::2], y[1::2], C=0.5)
    import copy

    model = copy.deepcopy(source)
    transfer.replace_head(model, 6)
    transfer.head_from_probe(model, probe)
    with torch.no_grad():
        logits = model(transfer._normalised(x[1::2], model, "cpu"))
    expected = probe.classifier.decision_function(feats[1::2].numpy())
    assert np.allclose(logits.numpy(), expected, atol=1e-3)
    assert torch.equal(logits.argmax(1), probe.predictions)


def test_head_from_a_two_class_probe():
    model, x = _net(), _images(16)
    y = torch.arange(16) % 2
    feats = transfer.extract_features(model, x, "classifier.flatten")
    probe = transfer.linear_probe(feats, y, feats, y)
    transfer.replace_head(model, 2)
    transfer.head_from_probe(model, probe)
    with torch.no_grad():
        pred = model(transfer._normalised(x, model, "cpu")).argmax(1)
    assert torch.equal(pred, probe.predictions)


# ----------------------------------------------------------------------------- heads, blocks, freezing


def test_heads_and_blocks_of_zoo_and_torchvision_models():
    import torchvision

    assert transfer.find_head(_net()) == "classifier.fc"
    assert transfer.blocks(_net()) == [("features.conv1",), ("features.conv2",), ("features.conv3",),
                                       ("features.conv4",), ("classifier.fc",)]
    assert transfer.blocks(_net(batch_norm=True))[0] == ("features.conv1", "features.bn1")
    resnet = torchvision.models.resnet18()
    b = transfer.blocks(resnet)
    assert b[0] == ("conv1", "bn1") and b[1] == ("layer1.0",) and b[-2] == ("layer4.1",) and b[-1] == ("fc",)
    assert len(b) == 10
    assert transfer.find_head(torchvision.models.vgg16()) == "classifier.6"
    assert transfer.replace_head(resnet, 37) == "fc" and resnet.fc.out_features == 37
    assert resnet(torch.zeros(1, 3, 64, 64)).shape == (1, 37)


def test_a_model_without_a_linear_head_says_how_to_name_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(TransferError, match="head="):
        transfer.find_head(model)
    assert transfer.replace_head(model, 5, head="2") == "2" and model[2].out_channels == 5
    with pytest.raises(TransferError, match="features.relu1|valid|Did you|choose"):
        transfer.find_head(_net(), "classifier.nothing")


def test_set_trainable_counts_and_refusals():
    model = _net(batch_norm=True)
    f = transfer.set_trainable(model, 1)
    assert f.trained == [("features.conv4", "features.bn4"), ("classifier.fc",)]
    assert f.frozen_norms == ["features.bn1", "features.bn2", "features.bn3"]
    assert f.trainable_parameters == sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    assert not model.features.bn1.training and model.features.bn4.training and model.features.conv1.training
    f = transfer.set_trainable(model, "all")  # a second call undoes the first
    assert f.frozen_norms == [] and all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.features.bn1.training
    with pytest.raises(TransferError, match="nothing to train"):
        transfer.set_trainable(model, [])
    with pytest.raises(TransferError, match="0 to 4"):
        transfer.set_trainable(model, 9)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to"):
        Trainer(model, _data(), epochs=1, batch_size=8, progress=False)


def test_a_new_head_trains_whatever_names_are_given():
    model = _net()
    trainer = transfer.fine_tuner(model, _data(), trainable=["features.conv4"], lr=0.05, progress=False,
                                  device="cpu", batch_size=8)
    assert model.classifier.fc.weight.requires_grad and model.features.conv4.weight.requires_grad
    assert not model.features.conv3.weight.requires_grad
    assert ("classifier.fc",) in trainer.freezing.trained


def test_frozen_layers_and_their_batch_norm_statistics_stay_bit_identical():
    model = _net(batch_norm=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = transfer.fine_tuner(model, _data(), trainable="head", lr=0.05, epochs=2, batch_size=8,
                                  progress=False, device="cpu")
    trainer.fit()
    after = model.state_dict()
    moved = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith("classifier.fc") for k in moved)
    assert torch.equal(before["features.bn2.running_mean"], after["features.bn2.running_mean"])
    assert int(after["features.bn3.num_batches_tracked"]) == int(before["features.bn3.num_batches_tracked"])


def test_the_pitfall_the_freezing_avoids():
    """Without keeping them in eval mode, frozen batch-norm layers' statistics drift while the head trains."""
    model = _net(batch_norm=True)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("classifier"))
    before = model.features.bn2.running_mean.clone()
    model.train()
    Trainer(model, _data(), epochs=1, batch_size=8, progress=False, device="cpu").fit()
    assert not torch.equal(before, model.features.bn2.running_mean)


def test_a_group_at_learning_rate_zero_does_not_move():
    model = _net(batch_norm=True)
    before = {k: v.clone() for k, v in model.named_parameters()}
    trainer = transfer.fine_tuner(model, _data(), trainable="all", lr=0.05, backbone_lr=0.0, epochs=2,
                                  batch_size=8, progress=False, device="cpu")
    new_head = model.classifier.fc.weight.detach().clone()          # the fresh head, before training
    trainer.fit()
    for name, p in model.named_parameters():
        if name.startswith("classifier.fc"):
            continue
        assert torch.equal(p, before[name]), name
    assert not torch.equal(model.classifier.fc.weight, new_head)      # while the head at lr > 0 learnt
    with pytest.raises(TransferError, match="positive number"):
        transfer.fine_tuner(_net(), _data(), lr=0.0)
    with pytest.raises(TransferError, match="backbone_lr"):
        transfer.fine_tuner(_net(), _data(), lr=0.1, backbone_lr=-1)


def test_per_group_learning_rates_follow_the_schedule():
    model = _net()
    trainer = transfer.fine_tuner(model, _data(), trainable="all", lr=0.1, backbone_lr=0.01, epochs=4,
                                  batch_size=8, milestones=(2,), progress=False, device="cpu")
    lrs = {g["name"]: g["lr_scale"] for g in trainer.optimizer.param_groups}
    assert lrs == {"new layers": 1.0, "pretrained layers": pytest.approx(0.1)}
    trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.01, 0.001])


def test_fine_tuning_a_checkpointed_run_resumes(tmp_path):
    model = _net()
    t1 = transfer.fine_tuner(model, _data(), trainable=1, lr=0.05, epochs=2, batch_size=8, progress=False,
                             device="cpu", checkpoint=tmp_path / "ft.pt")
    t1.run_epoch()
    assert (tmp_path / "ft.pt").exists()
    model2 = _net()
    t2 = transfer.fine_tuner(model2, _data(), trainable=1, lr=0.05, epochs=2, batch_size=8, progress=False,
                             device="cpu", checkpoint=tmp_path / "ft.pt", resume=True)
    assert t2.epoch == 1
    t1.fit()
    t2.fit()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_reinitialised_copies_the_architecture_not_the_weights(source):
    fresh = transfer.reinitialised(source, seed=3)
    assert type(fresh) is type(source)
    assert not torch.equal(fresh.features.conv2.weight, source.features.conv2.weight)
    assert torch.equal(fresh.features.conv2.weight, transfer.reinitialised(source, seed=3).features.conv2.weight)
    # He initialisation: std √(2 / fan_in)
    fan_in = 32 * 5 * 5
    assert float(fresh.features.conv2.weight.detach().std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)


# ----------------------------------------------------------------------------- the embedded targets


def test_new_shapes_and_textures():
    assert shapes.SHAPES[:6] == shapes.CLASSES and set(shapes.NEW_CLASSES).isdisjoint(shapes.CLASSES)
    a, la = shapes.make_shapes(12, seed=4)
    b, lb = shapes.make_shapes(12, seed=4, classes=shapes.CLASSES)
    assert torch.equal(a, b) and torch.equal(la, lb)
    # every new shape: inside at its centre, outside far away
    u = torch.tensor([[[0.0, 3.0]]]).expand(6, 1, 2)
    d = shapes.shape_distance(torch.arange(6), u, torch.zeros_like(u), shapes.NEW_CLASSES)
    crescent = shapes.NEW_CLASSES.index("crescent")
    inside = [k for k in range(6) if k != crescent]  # the crescent's centre is its hollow
    assert (d[inside, 0, 0] < 0).all() and (d[:, 0, 1] > 0).all()
    top, _ = shapes.make_textures(30, seed=2, half="top")
    bottom, _ = shapes.make_textures(30, seed=2, half="bottom")
    assert not torch.equal(top, bottom)
    with pytest.raises(ValueError, match="'top' or 'bottom'"):
        shapes.make_textures(3, half="left")
    x, y = shapes.make_textures(30, seed=2)
    assert x.shape == (30, 3, 64, 64) and x.dtype == torch.uint8 and 0 <= int(y.min()) and int(y.max()) < 6
    assert torch.equal(x, shapes.make_textures(30, seed=2)[0])
    with pytest.raises(ValueError, match="at least two different"):
        shapes.make_textures(3, classes=("brick", "nonsense"))
    with pytest.raises(ValueError, match="at least two different"):
        shapes.make_shapes(3, classes=("disc",))


def test_target_images_are_balanced_and_nested():
    x, y = ts.target_images("different", 4, seed=1)
    assert torch.equal(torch.bincount(y), torch.full((6,), 4))
    big, ybig = ts.target_images("different", 7, seed=1)
    first4 = torch.cat([torch.arange(c * 7, c * 7 + 4) for c in range(6)])
    assert torch.equal(big[first4], x) and torch.equal(ybig[first4], y)
    d = ts.target_data("similar", per_class=3, test_per_class=2, seed=0, pool_per_class=5)
    assert len(d.train_images) == 18 and len(d.test_images) == 12 and d.classes == shapes.NEW_CLASSES
    with pytest.raises(TransferError, match="at least 1"):
        ts.target_data("similar", per_class=0)
    with pytest.raises(TransferError, match="'similar'"):
        ts.target_data("cats", per_class=3)


def test_per_class_subset_of_real_data():
    data = _data(n_train=30, classes=3)
    sub = ts.per_class_subset(data, 4, seed=0)
    assert torch.equal(torch.bincount(sub.train_labels), torch.full((3,), 4))
    with pytest.raises(TransferError, match="has only 10"):
        ts.per_class_subset(data, 11)
    with pytest.raises(TransferError, match="at least 1"):
        ts.per_class_subset(data, 0)


# ----------------------------------------------------------------------------- strategies and the table


def test_strategies_on_a_tiny_run(source):
    pre = source.cnnviz_preprocess
    data = ts.target_data("different", per_class=4, test_per_class=10, seed=0, mean=pre.mean, std=pre.std)
    recipe = ts.Recipe(min_images=64, max_images=64)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    for strategy in ts.STRATEGIES + ts.BASELINES:
        r = ts.run_strategy(strategy, source, data, recipe=recipe, seed=0)
        assert 0 <= r.accuracy <= 1
        if strategy in ("scratch", "finetune_top", "finetune_all"):
            assert r.curve and r.curve[-1]["images"] == 64
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())  # the source is untouched
    r = ts.run_strategy("probe", source, data, recipe=recipe, layer="features.relu2")
    assert r.layer == "features.relu2"
    with pytest.raises(TransferError, match="no strategy"):
        ts.run_strategy("magic", source, data)


def test_scratch_is_the_source_architecture_trained_as_the_source_was(source):
    m = ts.scratch_model(source, seed=0)
    assert isinstance(m.features.bn1, nn.BatchNorm2d) and m.features.conv3.out_channels == 64
    assert m.classifier.fc.out_features == 6


def test_a_tiny_table_fills_the_four_cells(tmp_path, source):
    config = ts.TableConfig(sizes=(2, 4), seeds=(0, 1), test_per_class=6,
                            recipe=ts.Recipe(min_images=64, max_images=64), threads=1)
    table = ts.cached_transfer_table(config, cache=tmp_path, progress=False)
    assert ts.is_cached(config, cache=tmp_path)
    cells = table.cells()
    assert [(c.data, c.similarity) for c in cells] == [("little", "similar"), ("little", "different"),
                                                       ("lots", "similar"), ("lots", "different")]
    for c in cells:
        assert c.verdict in ("agrees", "within noise", "partly", "disagrees") and c.explanation
        assert set(c.means) == set(ts.STRATEGIES)
    again = ts.cached_transfer_table(config, cache=tmp_path, progress=False)
    assert again.rows == table.rows
    n = len(config.targets) * len(config.sizes) * len(config.seeds)
    assert len([r for r in table.rows if r["strategy"] == "stage"]) == n * len(table.stages)


def test_the_embedded_table_shows_what_the_lecture_is_sure_of():
    """Little data, similar target: a linear classifier on the pretrained network beats training from
    scratch and a probe of the same network with random weights, on every seed."""
    table = ts.cached_transfer_table(progress=False)
    small = min(table.config.sizes)
    for metric in ("scratch", "random_probe", "pixels"):
        for pre, other in zip(table.accuracies("similar", small, "probe"),
                              table.accuracies("similar", small, metric)):
            assert pre > other + 0.1, (metric, pre, other)
    big = max(table.config.sizes)
    for seed_acc, scratch in zip(table.accuracies("different", big, "finetune_all"),
                                 table.accuracies("different", big, "scratch")):
        assert seed_acc > scratch - 0.05
    assert len(table.config.seeds) >= 3 and len(table.config.sizes) >= 3


def _separation(points, labels):
    """Between-class over within-class variance of 2-D points (Fisher's ratio, summed over both axes)."""
    means = torch.stack([points[labels == k].mean(0) for k in labels.unique()])
    within = sum(((points[labels == k] - means[i]) ** 2).sum() for i, k in enumerate(labels.unique()))
    between = ((means - points.mean(0)) ** 2).sum() * len(points) / len(means)
    return float(between / within)


def test_projections_are_two_dimensional_and_separate_more_at_the_top(source):
    proj = ts.projections(source, "similar", per_class=20)
    assert proj["layers"][0] == "pixels" and proj["layers"][-1] == ts.top_layer(source)
    for layer in proj["layers"]:
        assert proj["points"][layer].shape == (120, 2) and 0 < proj["variance"][layer] <= 1
    labels = proj["labels"]
    assert _separation(proj["points"][ts.top_layer(source)], labels) > 3 * _separation(proj["points"]["pixels"],
                                                                                       labels)
    with pytest.raises(TransferError, match="pca"):
        ts.projections(source, "similar", method="umap")


# ----------------------------------------------------------------------------- online data, offline


def test_online_targets_fall_back_to_the_embedded_ones(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.setattr(tvd, "OxfordIIITPet", offline)
    with pytest.warns(UserWarning, match="embedded 'similar' target"):
        data = ts.online_target("pets", root=tmp_path, per_class=2, test_per_class=2)
    assert data.classes == shapes.NEW_CLASSES
    from cnnviz.data import DatasetUnavailable

    with pytest.raises(DatasetUnavailable, match="could not be loaded"):
        ts.online_target("pets", root=tmp_path, fallback=None)
    with pytest.raises(DatasetUnavailable, match="no longer download Stanford Cars"):
        ts.online_target("cars", root=tmp_path, fallback=None)
    with pytest.raises(TransferError, match="pets"):
        ts.online_target("imagenet-22k")


def test_a_local_folder_of_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("audi", "bmw"):
            (tmp_path / split / cls).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{k}.png")
    data = ts.online_target(str(tmp_path), size=32)
    assert data.classes == ("audi", "bmw") and data.train_images.shape == (6, 3, 32, 32)
    assert len(data.test_images) == 4
    with pytest.raises(Exception, match="train/ and test/"):
        ts.online_target(str(tmp_path / "train"), fallback=None)


def test_source_model_offline_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.warns(UserWarning, match="offline model"):
        model = ts.source_model("resnet18")
    assert model.class_names == list(shapes.CLASSES)
    assert ts.feature_throughput(model, n=64, batch_size=32) > 0


def test_a_diverging_fine_tune_is_a_result_not_a_crash(source):
    pre = source.cnnviz_preprocess
    data = ts.target_data("similar", per_class=3, test_per_class=5, seed=0, mean=pre.mean, std=pre.std)
    r = ts.run_strategy("finetune_all", source, data, recipe=ts.Recipe(lr=1e4, backbone_factor=1.0, min_images=320,
                                                                       max_images=320))
    assert r.diverged and "diverged at step" in r.diverged and 0 <= r.accuracy <= 1
