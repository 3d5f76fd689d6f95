"""Which model call a path names (pure): every KServe v1 and Open Inference Protocol v2 route, the
path the predictor is sent, and which colour serves a requested version."""

from __future__ import annotations

import pytest
from ferry_gateway.upstream.routing import (
    BadModelPath,
    Kind,
    ModelRoute,
    colour_serving,
    match_model_route,
    valid_model_name,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models", ModelRoute(Kind.LIST, "", None, "/v1/models")),
        ("/v1/models/titanic", ModelRoute(Kind.V1_READY, "titanic", None, "/v2/models/titanic/ready")),
        (
            "/v1/models/titanic:predict",
            ModelRoute(Kind.V1_PREDICT, "titanic", None, "/v1/models/titanic:predict"),
        ),
        ("/v2/models/titanic", ModelRoute(Kind.V2_METADATA, "titanic", None, "/v2/models/titanic")),
        (
            "/v2/models/titanic/versions/3",
            ModelRoute(Kind.V2_METADATA, "titanic", "3", "/v2/models/titanic"),
        ),
        ("/v2/models/titanic/ready", ModelRoute(Kind.V2_READY, "titanic", None, "/v2/models/titanic/ready")),
        (
            "/v2/models/titanic/versions/3/ready",
            ModelRoute(Kind.V2_READY, "titanic", "3", "/v2/models/titanic/ready"),
        ),
        ("/v2/models/titanic/infer", ModelRoute(Kind.V2_INFER, "titanic", None, "/v2/models/titanic/infer")),
        (
            "/v2/models/titanic/versions/v1.2_rc-3/infer",
            ModelRoute(Kind.V2_INFER, "titanic", "v1.2_rc-3", "/v2/models/titanic/infer"),
        ),
        # a model may be called "ready", "infer" or "versions": the suffix decides, not the name
        ("/v2/models/ready", ModelRoute(Kind.V2_METADATA, "ready", None, "/v2/models/ready")),
        ("/v2/models/infer/ready", ModelRoute(Kind.V2_READY, "infer", None, "/v2/models/infer/ready")),
        ("/v2/models/versions", ModelRoute(Kind.V2_METADATA, "versions", None, "/v2/models/versions")),
    ],
)
def test_every_model_route(path: str, expected: ModelRoute) -> None:
    assert match_model_route(path) == expected


@pytest.mark.parametrize(
    ("path", "kind", "field"),
    [
        ("/v1/models/Bad_Name:predict", Kind.V1_PREDICT, "name"),
        ("/v1/models/", Kind.V1_READY, "name"),
        ("/v1/models/titanic:explain", Kind.V1_READY, "name"),
        ("/v1/models/a/b", Kind.V1_READY, "name"),
        ("/v2/models/", Kind.V2_METADATA, "name"),
        ("/v2/models/a/b/infer", Kind.V2_INFER, "name"),
        ("/v2/models/titanic/whatever", Kind.V2_METADATA, "name"),
        ("/v2/models/titanic/versions/", Kind.V2_METADATA, "version"),
        ("/v2/models/titanic/versions/3/4/infer", Kind.V2_INFER, "version"),
        ("/v2/models/titanic/versions/-3/ready", Kind.V2_READY, "version"),
        ("/v2/models/Titanic/versions/3", Kind.V2_METADATA, "name"),
        ("/v2/models/titanic\n/infer", Kind.V2_INFER, "name"),
        ("/v2/models/titanic/versions/3\n/infer", Kind.V2_INFER, "version"),
    ],
)
def test_model_paths_with_impossible_names_or_versions(path: str, kind: Kind, field: str) -> None:
    bad = match_model_route(path)
    assert isinstance(bad, BadModelPath) and (bad.kind, bad.field) == (kind, field)


@pytest.mark.parametrize(
    "path", ["/", "/v1", "/v1/modelsx", "/v2", "/v2/models", "/v2/health/ready", "/x/v1/models/a"]
)
def test_paths_that_are_no_model_call(path: str) -> None:
    assert match_model_route(path) is None


def test_methods() -> None:
    assert {k for k in Kind if k.method == "POST"} == {Kind.V1_PREDICT, Kind.V2_INFER}


def test_a_trailing_newline_is_no_name() -> None:
    assert not valid_model_name("titanic\n") and valid_model_name("titanic")


def test_the_colour_serving_a_version() -> None:
    def pick(v: str, *, may: bool = True, only: bool = False) -> bool | None:
        return colour_serving(v, "3", "4", may_preview=may, preview_only=only)

    assert pick("3") is False and pick("4") is True and pick("5") is None
    assert pick("4", may=False) is None  # the preview exists only for callers with the preview scope
    assert pick("3", only=True) is None and pick("4", only=True) is True  # the preview header
    assert colour_serving("3", None, None, may_preview=True, preview_only=False) is None


NAMES = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
VERSIONS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SUFFIXES = st.sampled_from(["", "/ready", "/infer"])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_odd_paths_never_crash_and_never_route_a_bad_name(tail: str) -> None:
    for prefix in ("/v1/models/", "/v2/models/", "/", "/v2/models/titanic/versions/"):
        route = match_model_route(prefix + tail)
        if isinstance(route, ModelRoute):
            assert route.kind is Kind.LIST or valid_model_name(route.model)
            assert route.version is None or ("/" not in route.version and "\n" not in route.version)
            # what is forwarded is one of the predictor's own paths, built from checked parts only
            assert route.path.isascii() and "\n" not in route.path and " " not in route.path
            assert route.path.startswith(("/v1/models", "/v2/models/"))


@settings(max_examples=300, deadline=None)
@given(NAMES, st.one_of(st.none(), VERSIONS), SUFFIXES)
def test_every_well_formed_v2_path_routes(name: str, version: str | None, suffix: str) -> None:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + suffix
    route = match_model_route(path)
    assert isinstance(route, ModelRoute)
    assert (route.model, route.version, route.path) == (name, version, f"/v2/models/{name}{suffix}")
    assert route.kind is {"": Kind.V2_METADATA, "/ready": Kind.V2_READY, "/infer": Kind.V2_INFER}[suffix]


@settings(max_examples=200, deadline=None)
@given(NAMES)
def test_every_well_formed_v1_path_routes(name: str) -> None:
    assert match_model_route(f"/v1/models/{name}") == ModelRoute(
        Kind.V1_READY, name, None, f"/v2/models/{name}/ready"
    )
    predict = match_model_route(f"/v1/models/{name}:predict")
    assert predict == ModelRoute(Kind.V1_PREDICT, name, None, f"/v1/models/{name}:predict")
