"""schemathesis against the app's own OpenAPI schema: requests generated from the schema (valid
and invalid ones) never get a 5xx, and every answer matches the schema — status code, content
type, headers and body — with every built-in check of schemathesis.

One exception is made, narrowly: a schema describes an upload as bytes, not as a roll or a
source file, so when the API says the *content* of an uploaded file is unusable (422
`invalid_input`, e.g. an empty or header-less file), that valid-looking request is not counted
as "valid data rejected". Every other check still applies to it.

The app runs on its own copy of the store (what schemathesis sends changes flags, runs and
snapshots). The default run is bounded (25 examples per operation); `-m slow` runs 300.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from api.app import create_app
from store.settings import Settings

from .conftest import Template

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
