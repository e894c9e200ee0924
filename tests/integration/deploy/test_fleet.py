"""The simulated devices as clients of the release channels (deploy.fleet): each runs the version its channel assigns
it, from a bundle fetched from the CDN and verified, and logs it in every event; the simulate stage records the
channels' state with the day, and the same state gives the same bytes."""

from __future__ import annotations

import gzip
import json

import pytest

from deploy.cdn import model_key
from deploy.channels import channel_key, in_rollout
from deploy.fleet import ChannelState
from deploy.push import deploy_version
from deploy.release import promote
from edgerec.sim.writer import EVENTS_FILE, SUMMARY_FILE, events_dir
from pipeline import stages
from tests.integration.deploy.conftest import V1, V2

pytestmark = pytest.mark.integration
DS = "2026-11-02"
USERS = 12


def simulated(settings) -> tuple[dict[str, set], dict, bytes]:
    """Run the simulate stage: (model_version -> devices in the events, the day's summary, the events file's bytes)."""
    stages.simulate(settings, DS)
    folder = events_dir(settings.raw, DS)
    data = (folder / EVENTS_FILE).read_bytes()
    devices: dict = {}
    for line in gzip.decompress(data).splitlines():
        event = json.loads(line)
        devices.setdefault(event["model_version"], set()).add(event["device_id"])
    return devices, json.loads((folder / SUMMARY_FILE).read_text()), data


@pytest.fixture
def world(released):
    settings, targets = released(EDGEREC_SIM_USERS=str(USERS), EDGEREC_SIM_CORRUPT_RATE="0")
    yield settings, targets
    targets.close()


def test_with_no_channel_set_every_device_keeps_the_cloud_order(world):
    settings, _ = world
    devices, summary, _ = simulated(settings)
    assert list(devices) == [None] and len(devices[None]) > USERS // 2  # a few users have no session that day
    assert summary["devices_by_model_version"] == {"cloud order": len(devices[None])}
    assert summary["channels"] == {"canary": None, "stable": None}


def test_devices_run_what_their_channel_assigns_and_the_same_state_gives_the_same_bytes(world):
    settings, targets = world
    cloud_order = simulated(settings)[2]
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first release")
    promote(settings, targets, V2, "canary", 50, "daily")
    devices, summary, data = simulated(settings)
    every = set().union(*devices.values())
    on_canary = {d for d in every if in_rollout(d, "canary", 50)}
    assert 0 < len(on_canary) < len(every)  # both cohorts present: the split is the rollout's hash, not all or nothing
    assert devices == {V2: on_canary, V1: every - on_canary}
    assert summary["channels"] == {"canary": {"version": V2, "rollout_percent": 50.0},
                                   "stable": {"version": V1, "rollout_percent": 100.0}}
    assert summary["devices_by_model_version"] == {V1: len(every - on_canary), V2: len(on_canary)}
    fetched = sorted(p.name for p in settings.devices_dir.iterdir() if p.is_dir())
    assert fetched == [V1, V2]  # fetched once each, nothing partial
    assert data != cloud_order  # the models re-ranked
    assert simulated(settings)[2] == data  # again from the cached bundles: the same bytes
    assert ChannelState.from_dict(summary["channels"]).to_dict() == summary["channels"]


def test_a_bundle_that_fails_the_apps_checks_is_refused_and_its_devices_keep_the_cloud_order(world):
    settings, targets = world
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "canary", 100, "daily")
    reranker = settings.home / "cdn" / model_key(V1, "reranker.onnx")
    reranker.write_bytes(reranker.read_bytes() + b"tampered")  # what the gates tested is no longer what is served
    devices, summary, _ = simulated(settings)
    assert list(devices) == [None] and summary["devices_by_model_version"] == {"cloud order": len(devices[None])}
    assert not (settings.devices_dir / V1).exists() and not any(settings.devices_dir.glob(".*partial"))
    refused = stages.simulate(settings, DS)["refused_bundles"]
    assert list(refused) == [V1] and "reranker.onnx" in refused[V1]


def test_a_forged_pointer_is_not_followed_as_v1_model_answers_it(world):
    """A broken canary leaves its devices on stable; a broken stable leaves every device on the cloud's order."""
    settings, targets = world
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first release")
    promote(settings, targets, V2, "canary", 100, "daily")
    targets.cdn.put_bytes(channel_key("canary"), b"{not json")
    devices, summary, _ = simulated(settings)
    assert list(devices) == [V1] and summary["channels"]["canary"] is None
    assert "canary.json is not a channel pointer" in stages.simulate(settings, DS)["broken_channels"]["canary"]
    stable = json.loads(targets.cdn.get_bytes(channel_key("stable")))
    targets.cdn.put_bytes(channel_key("stable"), json.dumps({**stable, "version": V2}).encode())  # edited by hand
    devices, summary, _ = simulated(settings)
    assert list(devices) == [None] and summary["channels"] == {"canary": None, "stable": None}
    assert "signature that does not match" in stages.simulate(settings, DS)["broken_channels"]["stable"]


def test_an_older_signed_pointer_put_back_is_not_followed(world):
    settings, targets = world
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "canary", 100, "day 1")
    first = targets.cdn.get_bytes(channel_key("canary"))
    promote(settings, targets, V2, "canary", 100, "day 2")
    assert list(simulated(settings)[0]) == [V2]  # the devices have seen sequence 2
    targets.cdn.put_bytes(channel_key("canary"), first)  # validly signed, but older
    devices, summary, _ = simulated(settings)
    assert list(devices) == [None] and summary["channels"]["canary"] is None
    assert "an older pointer put back" in stages.simulate(settings, DS)["broken_channels"]["canary"]
