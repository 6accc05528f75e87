"""schemathesis against the app's own OpenAPI schema: requests generated from the schema (valid
and invalid ones) never get a 5xx, and every answer matches the schema — status code, content
type, headers and body — with every built-in check of schemathesis.

One exception is made, narrowly: a schema describes an upload as bytes, not as a roll or a
source file, so when the API says the *content* of an uploaded file is unusable (422
`invalid_input`, e.g. an empty or header-less file), that valid-looking request is not counted
as "valid data rejected". Every other check still applies to it.

The app runs on its own copy of the store (what schemathesis sends changes flags, runs and
snapshots). The default run is bounded (25 examples per operation); `-m slow` runs 300.

And the examples of the OpenAPI page: every schema, request body and JSON response has one, and
each example is what the API would send or take — its model parses it (a response model gives it
back field for field) and it fits the published schema — so that none of them can rot.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import positive_data_acceptance

from api import schemas as models
from api.app import create_app
from engine.rules import RULES
from store.settings import Settings

from .conftest import Api, Template

_UPLOADS = ("/api/v1/batches", "/api/v1/sources/{key}/snapshots")
# The system user may do everything but review flags (a supervisor's) and read the audit log
# (an auditor's): each operation is called by a user allowed to, so that it is reached whole.
_USER = {("POST", "/api/v1/flags/{flag_id}/events"): "sup", ("GET", "/api/v1/audit"): "aud"}


@pytest.fixture(scope="module")
def app_schema(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    data_dir = tmp_path_factory.mktemp("schemathesis") / "data"
    shutil.copytree(template.data_dir, data_dir)
    app = create_app(Settings(data_dir=data_dir, policy=template.policy, max_upload_mb=1))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    from schemathesis.python.asgi import (
        shutdown_lifespans,  # the app's lifespan, which schemathesis started
    )

    shutdown_lifespans()


schema = schemathesis.pytest.from_fixture("app_schema")
_SETTINGS = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": list(HealthCheck)}


def _call_and_validate(case: schemathesis.Case, template: Template) -> None:
    user = _USER.get((case.method.upper(), case.operation.path), "sys")
    headers = {"Authorization": f"Bearer {template.tokens[user]}"}
    response = case.call(headers=headers)
    unusable_file = (case.operation.path in _UPLOADS and response.status_code == 422
                     and response.json().get("error") == "invalid_input")
    case.validate_response(response, headers=headers,
                           excluded_checks=[positive_data_acceptance] if unusable_file else None)


@schema.parametrize()
@settings(max_examples=25, **_SETTINGS)
def test_the_api_keeps_to_its_schema(case: schemathesis.Case, template: Template) -> None:
    _call_and_validate(case, template)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=300, **_SETTINGS)
def test_the_api_keeps_to_its_schema_at_length(case: schemathesis.Case, template: Template) -> None:
    _call_and_validate(case, template)


# --- the examples -------------------------------------------------------------------------------

MODELS: dict[str, type[BaseModel]] = {
    name: model for name in models.__all__
    if isinstance(model := getattr(models, name), type) and issubclass(model, BaseModel)
}
_BASE = "urn:crosscheck:openapi"


def _examples(model: type[BaseModel]) -> list[Any]:
    """A model's examples, as its JSON Schema states them (before FastAPI drops their nulls)."""
    return model.model_json_schema()["examples"]


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    """The OpenAPI document as a client fetches it, with the examples whole (restore_examples)."""
    response = api.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return models.restore_examples(response.json())


def _validator(document: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A validator of the published schema at `pointer` (its $refs resolved in the document)."""
    registry = Registry().with_resource(_BASE, Resource.from_contents(document, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{_BASE}#{pointer}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref (to a component) followed."""
    ref = schema.get("$ref", "")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _has_example(document: dict[str, Any], media: dict[str, Any]) -> bool:
    """A media type has an example: its own, its schema's (an array's items'), or, for a form,
    one for each field."""
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = _schema(document, media.get("schema", {}))
    if schema.get("type") == "array":
        schema = _schema(document, schema.get("items", {}))
    if schema.get("examples"):
        return True
    fields = schema.get("properties", {})
    return bool(fields) and all(field.get("examples") for field in fields.values())


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_schema_has_an_example(document: dict[str, Any]) -> None:
    lacking = []
    for name, schema in document["components"]["schemas"].items():
        if name.startswith("Body_"):  # a multipart form, FastAPI's model of its fields: each field's
            lacking += [f"{name}.{field}" for field, spec in schema["properties"].items() if not spec.get("examples")]
        elif not schema.get("examples"):
            lacking.append(name)
        elif name not in MODELS:
            lacking.append(f"{name} (not a model of api.schemas, so its examples are not checked)")
    assert not lacking, lacking


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    bodies = {name: operation["requestBody"] for name, operation in _operations(document) if "requestBody" in operation}
    assert {"POST /api/v1/checks", "POST /api/v1/batches", "POST /api/v1/sources/{key}/snapshots",
            "POST /api/v1/flags/{flag_id}/events", "POST /api/v1/runs"} <= set(bodies)
    lacking = [f"{name} {media_type}" for name, body in bodies.items()
               for media_type, media in body["content"].items() if not _has_example(document, media)]
    assert not lacking, lacking


def test_every_json_response_has_an_example(document: dict[str, Any]) -> None:
    lacking = [f"{name} {status}" for name, operation in _operations(document)
               for status, response in operation["responses"].items()
               for media_type, media in response.get("content", {}).items()
               if media_type == "application/json" and "schema" in media and not _has_example(document, media)]
    assert not lacking, lacking


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_examples_parse_as_their_model(name: str) -> None:
    model = MODELS[name]
    examples = _examples(model)
    assert examples, f"{name} has no examples"
    for example in examples:
        parsed = model.model_validate(example)
        assert model.model_validate_json(json.dumps(example)) == parsed  # as it comes over the wire, strictly
        if not name.endswith("In"):  # an answer: every field, as the API writes it
            assert parsed.model_dump(mode="json") == example


def test_the_examples_fit_the_published_schema(document: dict[str, Any]) -> None:
    """Each example against the schema schemathesis checks the API by: each component's (which
    the request bodies and responses refer to), each form field's, each error response's."""
    checks: list[tuple[str, str, Any]] = []  # (what, pointer, example)
    for name, schema in document["components"]["schemas"].items():
        pointer = f"/components/schemas/{name}"
        checks += [(name, pointer, example) for example in schema.get("examples", [])]
        for field, spec in schema.get("properties", {}).items():
            checks += [(f"{name}.{field}", f"{pointer}/properties/{field}", example)
                       for example in spec.get("examples", [])]
    for name, operation in _operations(document):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json", {})
            ref = media.get("schema", {}).get("$ref")
            for label, example in media.get("examples", {}).items():
                checks.append((f"{name} {status} {label}", ref.removeprefix("#"), example["value"]))
    assert len(checks) > 50
    wrong = [f"{what}: {error.json_path}: {error.message}" for what, pointer, example in checks
             for error in _validator(document, pointer).iter_errors(example)]
    assert not wrong, "\n".join(wrong)


def test_the_examples_use_the_catalogue_and_valid_ids() -> None:
    """Rule ids and labels from the catalogue, IDs valid or masked as the API masks them."""
    from api.access import mask_id
    from engine import ids

    flags = [*_examples(models.FlagOut), *_examples(models.StoredFlagOut), *_examples(models.FlagDetailOut),
             *_examples(models.CheckOut)[0]["flags"], *_examples(models.FlagPage)[0]["items"]]
    for flag in flags:
        rule = RULES[flag["rule_id"]]
        assert (flag["rule_label_zh"], flag["severity"], flag["cadence"]) == \
            (rule.label_zh, rule.severity, rule.cadence)
        for number in (flag["id_number"], flag["roll_id_number"]):
            assert ids.is_valid(number) or "*" in number and mask_id(number) == number, number
    for member in _examples(models.MemberIn):
        assert ids.is_valid(member["id_number"])
    ran = _examples(models.CheckOut)[0]["ran"] + [s["rule_id"] for s in _examples(models.CheckOut)[0]["skipped"]]
    assert sorted(ran) == sorted(RULES)


def test_restoring_the_examples_keeps_their_nulls(api: Api) -> None:
    """FastAPI drops nulls from the document; restore_examples puts them back, and only them."""
    raw = api.client.get("/openapi.json").json()
    restored = models.restore_examples(copy.deepcopy(raw))
    batch = restored["components"]["schemas"]["BatchOut"]["examples"]
    assert batch == _examples(models.BatchOut) and batch[1]["finished_at"] is None
    assert models.restore_examples(copy.deepcopy(restored)) == restored
    raw["components"]["schemas"] = {n: {k: v for k, v in s.items() if k != "examples"}
                                    for n, s in raw["components"]["schemas"].items()}
    bare = {n: {k: v for k, v in s.items() if k != "examples"} for n, s in restored["components"]["schemas"].items()}
    assert bare == raw["components"]["schemas"]
