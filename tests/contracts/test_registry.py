import pytest

from tests.support import OMNIT, Net, reverts

DIGEST = b"\xab" * 32


def _register(net: Net, who: str = "owner", name: str = "m") -> int:
    receipt = net.send(who, net.registry.functions.registerModel(DIGEST, 1, OMNIT, "file:///m.pt", name))
    return int(net.event(receipt, "ModelRegistered")["modelId"])


def test_register_model_and_read_it_back(net: Net) -> None:
    receipt = net.send("owner", net.registry.functions.registerModel(DIGEST, 1, 3 * OMNIT, "blob://x", "resnet"))
    event = net.event(receipt, "ModelRegistered")
    assert event["owner"] == net.addr("owner")
    assert event["digest"] == DIGEST
    assert event["format"] == 1
    model = net.call(net.registry.functions.getModel(event["modelId"]))
    assert model[:5] == (1, net.addr("owner"), 3 * OMNIT, True, 1)
    assert (model[6], model[7], model[8]) == (DIGEST, "blob://x", "resnet")
    assert net.call(net.registry.functions.modelTerms(1))[1:] == (3 * OMNIT, True)
    assert net.call(net.registry.functions.modelCount()) == 1


def test_update_model_by_owner_only(net: Net) -> None:
    model_id = _register(net)
    net.send("owner", net.registry.functions.updateModel(model_id, 5, False, "https://cdn/m.pt"))
    assert net.call(net.registry.functions.modelTerms(model_id))[1:] == (5, False)
    assert net.call(net.registry.functions.getModel(model_id))[7] == "https://cdn/m.pt"
    with reverts("RegistryNotOwner", caller=net.addr("alice"), owner=net.addr("owner")):
        net.send("alice", net.registry.functions.updateModel(model_id, 1, True, "blob://y"))
    with reverts("RegistryUnknownModel", modelId=99):
        net.send("owner", net.registry.functions.updateModel(99, 1, True, "blob://y"))


def test_models_paginate_without_gaps(net: Net) -> None:
    for i in range(5):
        _register(net, name=f"m{i}")
    first = net.call(net.registry.functions.getModels(1, 2))
    second = net.call(net.registry.functions.getModels(3, 2))
    last = net.call(net.registry.functions.getModels(5, 2))
    assert [m[8] for m in first + second + last] == ["m0", "m1", "m2", "m3", "m4"]
    assert net.call(net.registry.functions.getModels(6, 2)) == ()
    with reverts("RegistryPageTooLarge", limit=201, maxLimit=200):
        net.call(net.registry.functions.getModels(1, 201))


@pytest.mark.parametrize(
    ("digest", "uri", "name", "error"),
    [
        (b"\x00" * 32, "blob://x", "n", "RegistryZeroDigest"),
        (DIGEST, "", "n", "RegistryInvalidUri"),
        (DIGEST, "x" * 513, "n", "RegistryInvalidUri"),
        (DIGEST, "blob://x", "n" * 4097, "RegistryFieldTooLong"),
    ],
)
def test_register_model_rejects_bad_input(net: Net, digest: bytes, uri: str, name: str, error: str) -> None:
    with reverts(error):
        net.send("owner", net.registry.functions.registerModel(digest, 0, 1, uri, name))
    assert net.call(net.registry.functions.modelCount()) == 0


def test_datasets(net: Net) -> None:
    receipt = net.send("alice", net.registry.functions.registerDataset(DIGEST, 1234, "blob://d", '{"rows": 3}'))
    dataset_id = net.event(receipt, "DatasetRegistered")["datasetId"]
    data = net.call(net.registry.functions.getDataset(dataset_id))
    assert (data[2], data[4], data[5], data[6]) == (1234, DIGEST, "blob://d", '{"rows": 3}')
    net.send("alice", net.registry.functions.updateDataset(dataset_id, "https://d", "{}"))
    assert net.call(net.registry.functions.getDatasets(0, 10))[0][5] == "https://d"
    assert net.call(net.registry.functions.datasetCount()) == 1
    with reverts("RegistryNotOwner"):
        net.send("bob", net.registry.functions.updateDataset(dataset_id, "https://evil", "{}"))
    with reverts("RegistryZeroSize"):
        net.send("alice", net.registry.functions.registerDataset(DIGEST, 0, "blob://d", ""))
    with reverts("RegistryUnknownDataset", datasetId=7):
        net.call(net.registry.functions.getDataset(7))
    with reverts("RegistryUnknownDataset", datasetId=7):
        net.send("alice", net.registry.functions.updateDataset(7, "blob://d", ""))
    with reverts("RegistryUnknownModel", modelId=1):
        net.call(net.registry.functions.getModel(1))
