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


def test_missing_or_unreadable_weights_file_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        classifiers.build_classifier("vgg16", str(tmp_path / "nowhere.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read as a state dict"):
        classifiers.build_classifier("vgg16", str(junk))


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
