"""Building the frozen classifier: names, class lists, local weights, download failure."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision import models

from maxclass_lightning import classifiers
from maxclass_lightning.errors import ConfigError

NAMES = classifiers.class_names("vgg16")


def test_class_names_come_from_torchvision_metadata():
    assert len(NAMES) == 1000
    assert NAMES[259] == "Pomeranian"
    assert NAMES == models.VGG16_Weights.DEFAULT.meta["categories"]


def test_classes_resolve_by_index_and_case_insensitive_name():
    assert classifiers.resolve_classes([259, "GOLDFISH", "948", "flamingo"], NAMES) == [259, 1, 948, 130]
    assert classifiers.resolve_classes("Granny Smith", NAMES) == [948]
    assert classifiers.resolve_classes("all", NAMES) == list(range(1000))
    # Both ways: the index's name resolves back to the index.
    assert [NAMES[i] for i in classifiers.resolve_classes(["flamingo"], NAMES)] == ["flamingo"]


def test_a_class_listed_twice_fails():
    with pytest.raises(ConfigError, match=r"lists 259 \(Pomeranian\) more than once"):
        classifiers.resolve_classes([259, "pomeranian"], NAMES)


def test_names_differing_in_case_or_shared_are_resolved_or_refused():
    assert classifiers.resolve_classes(["Cardigan"], NAMES) == [264]  # the corgi
    assert classifiers.resolve_classes(["cardigan"], NAMES) == [474]  # the sweater
    with pytest.raises(ConfigError, match=r"'CARDIGAN' is ambiguous: 264 \(Cardigan\), 474 \(cardigan\)"):
        classifiers.resolve_classes(["CARDIGAN"], NAMES)


def test_unknown_class_name_suggests_close_matches():
    with pytest.raises(ConfigError, match=r"unknown class name 'pomeranain'.*did you mean 'Pomeranian'"):
        classifiers.resolve_classes(["pomeranain"], NAMES)


@pytest.mark.parametrize("bad", [1000, -1])
def test_class_index_out_of_range_fails(bad):
    with pytest.raises(ConfigError, match=rf"class index {bad} is out of range.*0 to 999"):
        classifiers.resolve_classes([bad], NAMES)


def test_empty_class_list_fails():
    with pytest.raises(ConfigError, match=r"model\.classes is empty"):
        classifiers.resolve_classes([], NAMES)


def test_random_classifier_is_frozen_eval_and_seeded():
    first = classifiers.build_classifier("vgg16", None, seed=3)
    again = classifiers.build_classifier("vgg16", None, seed=3)
    assert not first.training
    assert not any(p.requires_grad for p in first.parameters())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_local_state_dict_loads(tmp_path):
    torch.manual_seed(7)
    saved = models.vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(saved.state_dict(), path)
    loaded = classifiers.build_classifier("vgg16", str(path))
    for (name, a), b in zip(saved.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not loaded.training


def test_weights_for_another_architecture_fail_clearly(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(models.alexnet().state_dict(), path)
    with pytest.raises(ConfigError, match=r"does not fit classifier 'vgg16'.*same architecture"):
        classifiers.build_classifier("vgg16", str(path))


def test_missing_or_unreadable_weights_file_fails_clearly_before_the_network_is_built(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    for path, message in [(tmp_path / "nowhere.pth", "does not exist"), (junk, "cannot be read as a state dict")]:
        with pytest.raises(ConfigError, match=message):
            classifiers.build_classifier("tests.networks:never_built", str(path))


def test_unknown_classifier_and_weights_names_fail_clearly():
    with pytest.raises(ConfigError, match=r"unknown classifier 'vgg61'.*did you mean.*vgg16"):
        classifiers.build_classifier("vgg61", None)
    with pytest.raises(ConfigError, match=r"unknown weights 'IMAGENET'.*DEFAULT, IMAGENET1K_V1"):
        classifiers.build_classifier("vgg16", "IMAGENET")


def test_failed_download_says_how_to_run_offline(monkeypatch, tmp_path):
    # The network edge: torchvision's download. Here it cannot happen; elsewhere it must not.
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ConfigError) as error:
        classifiers.build_classifier("vgg16", "DEFAULT")
    message = str(error.value)
    assert "cannot download vgg16 weights IMAGENET1K_V1" in message
    assert "model.weights: path/to/file.pth" in message and "model.weights: null" in message
    assert "\n" not in message


def test_callable_classifier_by_import_path():
    network = classifiers.build_classifier("torchvision.models:alexnet", None, seed=1)
    assert isinstance(network, models.AlexNet)
    assert not network.training
    with pytest.raises(ConfigError, match="cannot be imported"):
        classifiers.build_classifier("no_such_package.module:function", None)


def test_timm_model_random_and_from_a_local_state_dict(tmp_path):
    import timm

    random = classifiers.build_classifier("timm:resnet18", None, seed=3)
    assert not random.training and not any(p.requires_grad for p in random.parameters())
    again = classifiers.build_classifier("timm:resnet18", None, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(random.state_dict().values(), again.state_dict().values()))
    torch.manual_seed(7)
    saved = timm.create_model("resnet18")
    torch.save(saved.state_dict(), tmp_path / "resnet18.pth")
    loaded = classifiers.build_classifier("timm:resnet18", str(tmp_path / "resnet18.pth"))
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()))
    assert classifiers.class_names("timm:resnet18") == list(timm.data.ImageNetInfo().label_descriptions())
    assert classifiers.class_names("timm:resnet18")[259] == "Pomeranian"


def test_timm_pretrained_weights_offline_fail_in_one_line(monkeypatch):
    import huggingface_hub.constants

    # The network edge: the hub library refuses to reach the network, as without a connection.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"cannot download timm:resnet18 weights DEFAULT .* model.weights: null"):
        classifiers.build_classifier("timm:resnet18", "DEFAULT")
    with pytest.raises(ConfigError, match=r"unknown timm model 'resnet181'.*did you mean"):
        classifiers.build_classifier("timm:resnet181", None)


def test_input_size_and_normalization_come_from_the_networks_metadata():
    from maxclass_lightning import ClassVisualizer

    vit = ClassVisualizer(classes=259, classifier="timm:vit_tiny_patch16_224", weights=None)
    config = vit.classifier.pretrained_cfg
    assert vit.image_size == config["input_size"][-1]
    assert tuple(vit.normalize.mean) == tuple(config["mean"]) != classifiers.IMAGENET_MEAN
    b1 = ClassVisualizer(classes=259, classifier="efficientnet_b1", weights=None)
    assert b1.image_size == models.EfficientNet_B1_Weights.DEFAULT.transforms().crop_size[0] != 224
    assert ClassVisualizer(classes=259, classifier="efficientnet_b1", weights=None, image_size=64).image_size == 64


@pytest.mark.parametrize("name, side", [("efficientnet_lite0", 224), ("efficientnet_lite2", 260)])
def test_a_lite_network_by_name_is_the_shipped_imagenet_network_and_null_a_random_one(name, side):
    """Lite2 (260 px) is the results' judge that no run optimizes against."""
    described = classifiers.load(name)
    assert (described.input_size, described.mean, described.std) == (
        side,
        classifiers.IMAGENET_MEAN,
        classifiers.IMAGENET_STD,
    )
    # DEFAULT is its shipped weights: the same whatever the seed, and not a seeded random network.
    again = classifiers.build_classifier(name, "DEFAULT", seed=5)
    state = described.network.state_dict()
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
    random = classifiers.build_classifier(name, None, seed=5)
    assert not torch.equal(random.state_dict()["_fc.weight"], state["_fc.weight"])
    same = classifiers.build_classifier(name, None, seed=5)
    assert all(torch.equal(random.state_dict()[k], v) for k, v in same.state_dict().items())
    with pytest.raises(ConfigError, match="has its own: give DEFAULT"):
        classifiers.build_classifier(name, "IMAGENET1K_V1")


def test_null_weights_reinitialize_a_module_instance_on_a_copy():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(4, 3))
    before = network[0].weight.clone()
    assert classifiers.build_classifier(network, "DEFAULT") is network
    random = classifiers.build_classifier(network, None, seed=1)
    assert random is not network and torch.equal(network[0].weight, before)
    assert not torch.equal(random[0].weight, before)
    torch.testing.assert_close(classifiers.build_classifier(network, None, seed=1)[0].weight, random[0].weight)


@pytest.mark.parametrize("classifier", ["timm:resnet18", "efficientnet_lite0"])
def test_zoo_classifiers_run_by_name(tmp_path, classifier):
    from maxclass_lightning import visualize

    result = visualize(classifier, "pomeranian", recipe="quick", steps=2, image_size=64, weights=None,
                       logger=False, default_root_dir=str(tmp_path))  # fmt: skip
    assert result.names == ["259_pomeranian"] and result.images.shape == (1, 3, 64, 64)
    assert torch.isfinite(result.score).all() and 1 <= int(result.rank[0]) <= 1000
