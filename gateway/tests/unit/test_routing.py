"""The routing decision (pure): which URL a request goes to, from the ModelDeployment's status."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from urllib.parse import urlsplit

import pytest
from ferry_gateway.upstream.catalog import ModelEntry, entries
from ferry_gateway.upstream.routing import COLOURS, Refusal, Route, Upstreams, predictor_service
from hypothesis import given, settings
from hypothesis import strategies as st

NS = Upstreams(namespace="ml")


def svc(name: str) -> str:
    return f"http://{name}.ml.svc.cluster.local"


def entry(
    color: str | None = "blue",
    version: str | None = "3",
    preview_color: str | None = None,
    preview_version: str | None = None,
    preview_ready: bool = False,
) -> ModelEntry:
    return ModelEntry(
        "titanic", "Stable", version, color, True, preview_version, preview_ready, preview_color
    )


def test_the_operator_names_the_colours_and_their_services_this_way() -> None:
    from ferry_operator.builders import isvc_name
    from ferry_operator.resource import Color

    assert {c.value for c in Color} == COLOURS
    for c in Color:
        assert predictor_service("titanic", c.value) == f"{isvc_name('titanic', c)}-predictor"


def test_active_goes_to_the_active_colours_own_service() -> None:
    models = {"titanic": entry(color="green", version="4")}
    assert NS.route("titanic", False, models) == Route(svc("titanic-green-predictor"), "green")


def test_preview_goes_to_the_preview_colours_service_only_when_ready() -> None:
    verifying = entry(preview_color="green", preview_version="4", preview_ready=True)
    assert NS.route("titanic", True, {"titanic": verifying}) == Route(svc("titanic-green-predictor"), "green")
    assert NS.route("titanic", False, {"titanic": verifying}) == Route(svc("titanic-blue-predictor"), "blue")
    deploying = replace(verifying, preview_ready=False)
    refused = NS.route("titanic", True, {"titanic": deploying})
    assert refused == Refusal(True, "the preview of model titanic (version 4) is not ready yet")
    stable = entry()
    assert NS.route("titanic", True, {"titanic": stable}) == Refusal(
        False, "no ModelDeployment provides a preview colour of this model"
    )


def test_unknown_models_and_models_without_a_version() -> None:
    assert NS.route("iris", False, {"titanic": entry()}) == Refusal(
        False, "no ModelDeployment provides this model"
    )
    pending = replace(entry(color=None, version=None), phase="Pending")
    assert NS.route("titanic", False, {"titanic": pending}) == Refusal(
        True, "model titanic has no active version yet (phase Pending)"
    )


@pytest.mark.parametrize("colour", [None, "", "purple", "Blue", "blue.evil.example", "../x"])
def test_a_colour_the_gateway_does_not_know_falls_back_to_the_stable_services(colour: str | None) -> None:
    models = {"titanic": entry(color=colour, preview_color=colour, preview_version="4", preview_ready=True)}
    assert NS.route("titanic", False, models) == Route(svc("titanic"), None)
    assert NS.route("titanic", True, models) == Route(svc("titanic-preview"), None)


def test_before_the_catalog_is_listed_the_stable_services_serve() -> None:
    assert NS.route("titanic", False, None) == Route(svc("titanic"), None)
    assert NS.route("titanic", True, None) == Route(svc("titanic-preview"), None)


def test_static_upstreams_ignore_colours() -> None:
    static = Upstreams({"titanic": "http://127.0.0.1:8081"}, {"titanic": "http://127.0.0.1:8082"}, "ml")
    models = {"titanic": entry(color="green", preview_color="blue", preview_version="5", preview_ready=True)}
    assert static.route("titanic", False, models) == Route("http://127.0.0.1:8081", None)
    assert static.route("titanic", True, models) == Route("http://127.0.0.1:8082", None)
    assert static.route("iris", False, None) == Refusal(False, "this gateway does not serve this model")
    only_active = Upstreams({"titanic": "http://127.0.0.1:8081"})
    assert only_active.route("titanic", True, None) == Refusal(
        False, "this gateway does not serve a preview colour"
    )


def test_entries_read_both_colours_from_the_status() -> None:
    md = {
        "metadata": {"name": "titanic"},
        "status": {
            "phase": "Verifying",
            "active": {"color": "blue", "modelVersion": "3", "ready": True},
            "preview": {"color": "green", "modelVersion": "4", "ready": True},
        },
    }
    models = entries([md])
    assert NS.route("titanic", False, models) == Route(svc("titanic-blue-predictor"), "blue")
    assert NS.route("titanic", True, models) == Route(svc("titanic-green-predictor"), "green")
    assert NS.routed(models) == {svc("titanic-blue-predictor"), svc("titanic-green-predictor")}


# ---- properties over arbitrary statuses -------------------------------------------------------

NAMES = st.from_regex(r"\A[a-z]([-a-z0-9]{0,45}[a-z0-9])?\Z")  # the CRD keeps names to 47 characters
COLOUR_VALUES = st.one_of(st.none(), st.sampled_from(["blue", "green"]), st.text(max_size=8))
VERSIONS = st.one_of(st.none(), st.integers(1, 99).map(str))


@st.composite
def model_entries(draw: st.DrawFn, name: str) -> ModelEntry:
    return ModelEntry(
        name,
        draw(st.sampled_from(["Pending", "Stable", "Deploying", "Verifying", "Promoting", "Degraded"])),
        draw(VERSIONS),
        draw(COLOUR_VALUES),
        draw(st.booleans()),
        draw(VERSIONS),
        draw(st.booleans()),
        draw(COLOUR_VALUES),
    )


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, ModelEntry]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    return {n: draw(model_entries(n)) for n in names}


@settings(max_examples=300, deadline=None)
@given(catalogs(), st.booleans())
def test_every_route_follows_its_own_entry(models: dict[str, ModelEntry], preview: bool) -> None:
    routed = NS.routed(models)
    seen: set[str] = set()
    for name, e in models.items():
        r = NS.route(name, preview, models)
        # only the model's own entry matters
        assert NS.route(name, preview, {name: e}) == r
        colour, version = (e.preview_color, e.preview_version) if preview else (e.color, e.version)
        if version is None or (preview and not e.preview_ready):
            assert isinstance(r, Refusal)
            continue
        assert isinstance(r, Route)
        seen.add(r.url)
        host = urlsplit(r.url).hostname or ""
        assert all(0 < len(label) <= 63 for label in host.split("."))
        if colour in COLOURS:
            assert r.color == colour and host == f"{name}-{colour}-predictor.ml.svc.cluster.local"
        else:
            assert r.color is None and host == f"{name}{'-preview' if preview else ''}.ml.svc.cluster.local"
    assert seen <= routed


@st.composite
def rollouts(draw: st.DrawFn) -> list[ModelEntry]:
    """Statuses as the operator writes them through rollouts, promotions, aborts and rollbacks."""
    e = entry(color=draw(st.sampled_from(["blue", "green"])), version="1")
    out, latest = [e], 1
    for step in draw(
        st.lists(st.sampled_from(["start", "ready", "promote", "abort", "rollback"]), max_size=25)
    ):
        other = "green" if e.color == "blue" else "blue"
        if step == "start" and e.preview_version is None:
            latest += 1
            e = replace(e, preview_color=other, preview_version=str(latest), preview_ready=False)
        elif step == "ready" and e.preview_version is not None:
            e = replace(e, preview_ready=True)
        elif step == "promote" and e.preview_ready:
            e = entry(color=e.preview_color, version=e.preview_version)
        elif step == "abort" and e.preview_version is not None:
            e = entry(color=e.color, version=e.version)
        elif step == "rollback" and e.preview_version is None and e.version != "1":
            e = entry(color=other, version=str(int(str(e.version)) - 1))
        out.append(e)
    return out


@settings(max_examples=300, deadline=None)
@given(rollouts())
def test_active_traffic_moves_with_the_catalog_and_never_back(trail: list[ModelEntry]) -> None:
    """Each step's active route is the active colour's Service; a colour left behind is routed to
    again only when the catalog itself makes it active again; a preview only while Ready."""
    served: list[str] = []
    for e in trail:
        r = NS.route("titanic", False, {"titanic": e})
        assert isinstance(r, Route) and r.color == e.color
        if not served or served[-1] != r.url:
            served.append(r.url)
        p = NS.route("titanic", True, {"titanic": e})
        assert isinstance(p, Route) == e.preview_ready
        assert NS.routed({"titanic": e}) == {r.url} | ({p.url} if isinstance(p, Route) else set())
    # the routed colours change exactly as often as the catalog's active colour does
    changes = sum(1 for a, b in pairwise(trail) if a.color != b.color)
    assert len(served) == changes + 1
