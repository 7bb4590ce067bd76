"""The OpenAPI generator (server/openapi): small cases built here, and the real document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate

from server.config import Settings
from server.edge import render_envoy_config
from server.openapi import document, facts, links
from server.openapi.operations import error_statuses, summary
from server.openapi.protos import Method, ProtoIndex
from server.openapi.schemas import SchemaBuilder

REPO = Path(__file__).resolve().parents[2]
F = descriptor_pb2.FieldDescriptorProto


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document.generate()


@pytest.fixture(scope="module")
def index() -> ProtoIndex:
    return ProtoIndex.load(document.DESCRIPTOR_SET)


def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (path, verb, op)
        for path, item in doc["paths"].items()
        for verb, op in item.items()
    }


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


# --- the real document -------------------------------------------------------------------


def test_the_checked_in_document_is_what_the_generator_writes(doc: dict[str, Any]) -> None:
    assert (REPO / "server" / "docs" / "openapi.json").read_text() == document.to_json(doc)


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_http_rule_is_one_operation_with_its_path_and_verb(
    doc: dict[str, Any], index: ProtoIndex
) -> None:
    rules = {
        m.name: (m.rule.path, m.rule.verb)
        for m in index.methods(document.SERVICES)
        if m.rule is not None
    }
    ops = _operations(doc)
    assert {name: (path, verb) for name, (path, verb, _) in ops.items()} == rules
    assert ops["BatchCreateTasks"][:2] == ("/api/v1/users/{user_id}/tasks:batchCreate", "post")
    assert "StreamTasks" not in ops  # gRPC only: no http rule


def test_created_and_no_content_statuses_follow_envoys_lua_routes(doc: dict[str, Any]) -> None:
    success = {
        name: next(s for s in op["responses"] if s.startswith("2"))
        for name, (_, _, op) in _operations(doc).items()
    }
    created = {n for n, s in success.items() if s == "201"}
    empty = {n for n, s in success.items() if s == "204"}
    assert created == {"Register", "CreateTask", "BatchCreateTasks"}
    assert empty == {"Logout", "DeleteUser", "DeleteTask", "BatchDeleteTasks"}
    for name in empty:
        assert "content" not in _operations(doc)[name][2]["responses"]["204"]


def test_only_register_login_and_refresh_are_public(doc: dict[str, Any]) -> None:
    public = {name for name, (_, _, op) in _operations(doc).items() if op.get("security") == []}
    assert public == {"Register", "Login", "Refresh"}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_has_a_summary_a_description_and_examples(doc: dict[str, Any]) -> None:
    for name, (_, _, op) in _operations(doc).items():
        assert op["summary"] and not op["summary"].startswith(name), name
        assert "gRPC: `/todo.v1." in op["description"], name
        success = next(r for s, r in op["responses"].items() if s.startswith("2"))
        if "content" in success:
            assert success["content"]["application/json"]["example"], name
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        has_request_example = "example" in body or any("example" in p for p in op["parameters"])
        assert has_request_example or "Example request:" in op["description"], name


def test_every_example_matches_its_schema(doc: dict[str, Any]) -> None:
    checked = 0
    for name, (_, _, op) in _operations(doc).items():
        media = [op.get("requestBody", {}).get("content", {}).get("application/json")]
        media += [r.get("content", {}).get("application/json") for r in op["responses"].values()]
        for item in filter(None, media):
            errors = list(_validator(doc, item["schema"]).iter_errors(item["example"]))
            assert not errors, (name, errors[0].message)
            checked += 1
        for param in op["parameters"]:
            if "example" in param:
                _validator(doc, param["schema"]).validate(param["example"])
    for response in doc["components"]["responses"].values():
        item = response["content"]["application/json"]
        _validator(doc, item["schema"]).validate(item["example"])
    assert checked > 30


def test_json_follows_the_transcoders_print_options(doc: dict[str, Any]) -> None:
    task = doc["components"]["schemas"]["Task"]
    props = task["properties"]
    assert props["due_at"] == {**props["due_at"], "type": "string", "format": "date-time"}
    assert props["priority"]["$ref"] == "#/components/schemas/Priority"
    assert doc["components"]["schemas"]["Priority"]["enum"][1] == "PRIORITY_LOW"
    # Always printed: scalars, enums, lists. Left out when unset: times.
    assert {"id", "title", "completed", "priority", "tags", "etag"} <= set(task["required"])
    assert not {"due_at", "completed_at", "remind_at"} & set(task["required"])
    window = _operations(doc)["ListReminders"][2]["parameters"][1]
    assert window["name"] == "window" and window["schema"]["pattern"].endswith("s$")
    # Input: only what the field's comment calls "Required".
    assert doc["components"]["schemas"]["CreateTaskRequest"]["required"] == ["title"]
    assert "required" not in doc["components"]["schemas"]["UpdateTaskRequest"]


def test_path_fields_are_parameters_not_body_fields(doc: dict[str, Any]) -> None:
    _, _, op = _operations(doc)["CreateTask"]
    assert [p["name"] for p in op["parameters"]] == ["user_id"]
    body = doc["components"]["schemas"]["CreateTaskRequest"]["properties"]
    assert "user_id" not in body and "title" in body
    _, _, update = _operations(doc)["UpdateTask"]
    query = [p["name"] for p in update["parameters"] if p["in"] == "query"]
    assert query == ["update_mask"]  # body "*": only the FieldMask also rides the query
    _, _, listing = _operations(doc)["ListTasks"]
    tag = next(p for p in listing["parameters"] if p["name"] == "tag")
    assert tag["schema"]["type"] == "array" and tag["explode"] is True


def test_errors_are_google_rpc_status_with_typed_details(doc: dict[str, Any]) -> None:
    status = doc["components"]["schemas"]["Status"]
    mapping = status["properties"]["details"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == {
        "type.googleapis.com/google.rpc.BadRequest",
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.RetryInfo",
    }
    bad = doc["components"]["schemas"]["BadRequest.FieldViolation"]
    assert {"field", "description"} <= set(bad["properties"])
    envoy_413 = {
        "code": 8,
        "message": "request body too large",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "BODY_TOO_LARGE",
                "domain": "todo.v1",
            }
        ],
    }
    _validator(doc, status).validate(envoy_413)
    with pytest.raises(jsonschema.ValidationError):
        _validator(doc, status).validate({"code": 3, "message": "x", "details": [{"@type": "x"}]})
    too_many = doc["components"]["responses"]["Error429"]
    assert "Retry-After" in too_many["headers"]


def test_each_route_lists_the_statuses_its_comments_name(doc: dict[str, Any]) -> None:
    ops = _operations(doc)
    assert {"400", "401", "403", "404", "409", "413", "429"} <= set(
        ops["UpdateTask"][2]["responses"]
    )
    assert "409" in ops["Register"][2]["responses"]  # ALREADY_EXISTS
    assert "401" not in ops["Register"][2]["responses"]  # public and never UNAUTHENTICATED
    assert "413" not in ops["GetTask"][2]["responses"]  # no body
    assert "RateLimit-Remaining" in ops["GetTask"][2]["responses"]["200"]["headers"]
    assert "RateLimit-Remaining" not in ops["Login"][2]["responses"]["200"]["headers"]


def test_body_limits_match_the_rendered_envoy_config(doc: dict[str, Any]) -> None:
    ops = _operations(doc)
    assert "at most 8 MiB" in ops["BatchCreateTasks"][2]["requestBody"]["description"]
    assert "at most 1 MiB" in ops["CreateTask"][2]["requestBody"]["description"]


def test_streams_are_ndjson_with_one_object_per_line(doc: dict[str, Any]) -> None:
    for name, item in [("StreamTasksNdjson", "Task"), ("WatchTasks", "TaskEvent")]:
        media = _operations(doc)[name][2]["responses"]["200"]["content"]["application/json"]
        assert media["x-ndjson"] is True
        assert media["schema"] == {"$ref": f"#/components/schemas/{item}"}


def test_a_created_task_links_to_the_operations_that_take_its_id(doc: dict[str, Any]) -> None:
    created = _operations(doc)["CreateTask"][2]["responses"]["201"]["links"]
    assert created["GetTask"]["parameters"] == {
        "user_id": "$request.path.user_id",
        "task_id": "$response.body#/id",
    }
    assert created["BatchDeleteTasks"]["requestBody"] == {"task_ids": ["$response.body#/id"]}
    batch = _operations(doc)["BatchCreateTasks"][2]["responses"]["201"]["links"]
    assert batch["DeleteTask"]["parameters"]["task_id"] == "$response.body#/tasks/0/id"


# --- pieces, on inputs made here ---------------------------------------------------------


def _file() -> descriptor_pb2.FileDescriptorSet:
    file = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3")
    file.enum_type.add(name="Color").value.add(name="COLOR_UNSPECIFIED", number=0)
    thing = file.message_type.add(name="Thing")
    thing.field.add(name="count", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    thing.field.add(name="color", number=2, type=F.TYPE_ENUM, type_name=".t.Color")
    thing.field.add(name="names", number=3, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    thing.field.add(name="maybe", number=4, type=F.TYPE_BOOL, proto3_optional=True, oneof_index=0)
    thing.oneof_decl.add(name="_maybe")
    thing.field.add(
        name="at", number=5, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"
    )
    loc = file.source_code_info.location.add(path=[4, 0, 2, 0])
    loc.leading_comments = " How many.\n buf:lint:ignore FIELD_LOWER_SNAKE_CASE\n"
    service = file.service.add(name="S")
    method = service.method.add(name="GetThing", input_type=".t.Thing", output_type=".t.Thing")
    method.options.Extensions[annotations_pb2.http].get = "/v1/things/{count}:peek"
    return descriptor_pb2.FileDescriptorSet(file=[file])


def test_schemas_map_proto_types_and_presence() -> None:
    index = ProtoIndex(_file())
    builder = SchemaBuilder(index, output_messages={".t.Thing"})
    assert builder.ref(".t.Thing") == {"$ref": "#/components/schemas/Thing"}
    thing = builder.components["Thing"]
    props = thing["properties"]
    assert props["count"] == {
        "type": "string",
        "format": "int64",
        "pattern": "^-?[0-9]+$",
        "description": "How many.",
    }
    assert props["names"] == {"type": "array", "items": {"type": "string"}}
    assert props["at"]["format"] == "date-time"
    assert builder.components["Color"]["enum"] == ["COLOR_UNSPECIFIED"]
    assert thing["required"] == ["count", "color", "names"]  # not `maybe`, not `at`
    as_input = SchemaBuilder(index, output_messages=set())
    as_input.ref(".t.Thing")
    assert "required" not in as_input.components["Thing"]


def test_http_rules_and_comments_are_read_from_the_descriptors() -> None:
    (method,) = ProtoIndex(_file()).methods(("t.S",))
    assert method.rule is not None
    assert (method.rule.verb, method.rule.path) == ("get", "/v1/things/{count}:peek")
    assert method.grpc_path == "/t.S/GetThing"
    assert ProtoIndex(_file()).comment(".t.Thing.count") == "How many."


def _method(comment: str, service_comment: str = "") -> Method:
    return Method("t.S", "GetThing", ".t.A", ".t.B", False, comment, service_comment, None)


def test_summary_is_the_first_sentence_without_the_rpc_name() -> None:
    text = "GetThing returns a thing,\nor nothing. More.\n\nReturns OK; NOT_FOUND."
    assert summary(_method(text)) == "Returns a thing, or nothing"
    assert summary(_method("")) == "GetThing"


def test_error_statuses_come_from_the_comments_plus_the_edge() -> None:
    got = error_statuses(
        _method("Returns ABORTED; NOT_FOUND.", "may return UNAVAILABLE"), False, True
    )
    assert got[409] == ["ABORTED"] and got[404] == ["NOT_FOUND"] and got[503] == ["UNAVAILABLE"]
    assert got[401] == ["UNAUTHENTICATED"] and got[429] == ["RESOURCE_EXHAUSTED"]
    assert 413 in got and 400 in got and 500 in got  # the edge's own
    public = error_statuses(_method("Returns OK."), True, False)
    assert 401 not in public and 413 not in public


def test_edge_facts_come_from_the_rendered_config() -> None:
    edge = facts.from_envoy_config(render_envoy_config(Settings(dev_tls=False)))
    assert edge.status_for("/todo.v1.TaskService/CreateTask") == 201
    assert edge.status_for("/todo.v1.TaskService/DeleteTask") == 204
    assert edge.status_for("/todo.v1.TaskService/GetTask") == 200
    assert edge.body_limit("/api/v1/users/me/tasks") == 1024 * 1024
    assert edge.body_limit("/api/v1/users/me/tasks:batchDelete") == 8 * 1024 * 1024
    smaller = render_envoy_config(Settings(dev_tls=False), max_request_bytes=1000)
    assert facts.from_envoy_config(smaller).body_limit("/api/v1/users/me") == 1000


def test_links_need_an_id_and_a_matching_variable() -> None:
    components = {"Thing": {"properties": {"id": {"type": "string"}}}}
    paths: dict[str, Any] = {
        "/things": {
            "post": {
                "operationId": "Make",
                "parameters": [],
                "responses": {
                    "201": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        }
                    }
                },
            }
        },
        "/things/{thing_id}": {
            "get": {
                "operationId": "Get",
                "parameters": [{"name": "thing_id", "in": "path"}],
                "responses": {"200": {}},
            }
        },
        "/other/{other_id}": {
            "get": {
                "operationId": "Other",
                "parameters": [{"name": "other_id", "in": "path"}],
                "responses": {"200": {}},
            }
        },
    }
    links.add_links(paths, components)
    made = paths["/things"]["post"]["responses"]["201"]["links"]
    assert list(made) == ["Get"]
    assert made["Get"]["parameters"] == {"thing_id": "$response.body#/id"}
    assert json.dumps(paths["/things/{thing_id}"]).count("links") == 0
