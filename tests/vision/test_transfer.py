import pytest
import torch
from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.vision.models import resnet18, vgg16
from nlp182.vision.transfer import fine_tune_groups, freeze, unfreeze


def _model() -> nn.Module:
    return resnet18(num_classes=10, width=0.125, in_channels=1, small_input=True)


def test_frozen_weights_and_statistics_do_not_move_while_the_rest_trains():
    model = _model()
    frozen = freeze(model, up_to="layer2")
    assert frozen == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]
    model.reset_classifier(3)
    head = model.get_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    model.train()
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 3, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        lower = name.split(".")[0] in frozen
        if lower:
            assert not moved, f"{name} moved although frozen"
    assert not torch.equal(before["layer3.0.conv1.weight"], after["layer3.0.conv1.weight"])
    assert not torch.equal(before["layer3.0.bn1.running_mean"], after["layer3.0.bn1.running_mean"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert model.fc is head and head.out_features == 3
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_everything_and_bad_layer_name():
    model = _model()
    freeze(model)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(InvalidInputError, match="layer3"):
        freeze(model, up_to="block9")
    with pytest.raises(InvalidInputError, match="no trainable"):
        fine_tune_groups(model, 0.1)


def test_reset_classifier_keeps_the_input_width_dtype_and_a_nested_head_place():
    model = vgg16(num_classes=4, width=0.0625, hidden=8).double()
    model.reset_classifier(7)
    head = model.get_classifier()
    assert model.classifier[7] is head and head.in_features == 8 and head.weight.dtype == torch.float64
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).shape == (2, 7)
    with pytest.raises(InvalidInputError):
        model.reset_classifier(-1)


def test_fine_tune_groups_give_lower_layers_smaller_steps():
    model = _model()
    freeze(model, up_to="layer1")
    groups = fine_tune_groups(model, base_lr=0.1, decay=0.5)
    assert [g["name"] for g in groups] == ["layer2", "layer3", "layer4", "fc"]
    assert [g["lr"] for g in groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])
    optimizer = torch.optim.SGD(groups, lr=1.0)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])
    # plain SGD: the update of each parameter is exactly its group's lr times its gradient
    params = {id(p): p.detach().clone() for g in groups for p in g["params"]}
    loss = model(torch.randn(4, 1, 8, 8)).sum()
    loss.backward()
    grads = {id(p): p.grad.clone() for g in groups for p in g["params"]}
    optimizer.step()
    for group in groups:
        for p in group["params"]:
            torch.testing.assert_close(params[id(p)] - p.detach(), group["lr"] * grads[id(p)])


def test_freeze_holds_torch_batch_norm_statistics_too():
    model = resnet18(num_classes=10, width=0.125, norm=nn.BatchNorm2d)
    model.train()(torch.randn(4, 3, 32, 32) + 1.0)  # statistics of its own, not the initial zeros
    freeze(model, "layer3")
    model.train()
    norm = model.layer1[0].bn1
    before = norm.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(norm.running_mean, before)  # frozen: normalised with its statistics, not updated
    assert not torch.equal(model.layer4[0].bn1.num_batches_tracked, torch.tensor(0))  # above: still learns
    torch.optim.swa_utils.update_bn([torch.randn(4, 3, 32, 32)], model)  # resets every batch norm
    assert torch.equal(norm.running_mean, before)  # it would stay at 0, never refilled while frozen
    unfreeze(model)
    model(torch.randn(4, 3, 32, 32))
    assert norm.training and not torch.equal(norm.running_mean, before)
    norm.reset_running_stats()  # unfrozen: the class's own reset again
    assert torch.equal(norm.running_mean, torch.zeros_like(before))


def test_every_trainable_parameter_is_in_one_group_and_a_frozen_model_pickles():
    """A parameter held by the model itself (a position embedding) was in no group, so never
    trained; tied weights were in two, which torch's optimizers refuse. A frozen torch batch norm's
    hook was a lambda, so ``torch.save(model)`` failed."""
    import io

    class Tagged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.positions = nn.Parameter(torch.zeros(4, 3))
            self.embed, self.head = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight  # tied

    model = Tagged()
    groups = fine_tune_groups(model, base_lr=1.0)
    assert [(g["name"], g["lr"]) for g in groups] == [("", 0.5), ("embed", 1.0)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters())) == 2
    torch.optim.SGD(groups)  # no parameter in two groups
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(2))
    freeze(net, up_to="1")
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).train()
    loaded(torch.randn(2, 1, 5, 5))
    assert not loaded[1].training  # the frozen statistics still hold after the round trip


def test_a_bias_free_head_stays_bias_free_through_a_reset_to_no_classifier() -> None:
    model = vgg16(num_classes=4, width=0.0625, hidden=8)
    model.classifier[7] = torch.nn.Linear(8, 4, bias=False)
    model.reset_classifier(0)
    model.reset_classifier(7)
    assert model.get_classifier().bias is None and model.num_classes == 7
