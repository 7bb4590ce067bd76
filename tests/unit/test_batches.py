from __future__ import annotations

import uuid

import pytest

from server import domain, errors
from server.services import batches
from tests.unit.conftest import make_principal
from tests.unit.fakes import FakeStore


def fields(title: str = "t", **kw: object) -> domain.TaskFields:
    return domain.TaskFields(title=title, **kw)  # type: ignore[arg-type]


async def test_every_bad_item_is_named_and_nothing_is_written(uow, store: FakeStore, alice) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await batches.batch_create(
            uow(), alice, "me", [fields(), fields(" "), fields("x" * 201)], ""
        )
    assert [v.field for v in caught.value.violations] == ["tasks[1].title", "tasks[2].title"]
    assert store.tasks.rows == {}


@pytest.mark.parametrize("size", [0, 501])
async def test_batch_size_limits(uow, alice, size: int) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await batches.batch_create(uow(), alice, "me", [fields()] * size, "")
    assert caught.value.reason == "INVALID_BATCH_SIZE"


async def test_request_id_replays_and_refuses_a_different_body(
    uow, store: FakeStore, alice
) -> None:
    first = await batches.batch_create(uow(), alice, "me", [fields("a")], "r1")
    assert await batches.batch_create(uow(), alice, "me", [fields("a")], "r1") == first
    assert len(store.tasks.rows) == 1
    with pytest.raises(errors.InvalidArgument) as caught:
        await batches.batch_create(uow(), alice, "me", [fields("b")], "r1")
    assert caught.value.reason == "REQUEST_ID_REUSED"
    other_user = make_principal()
    await batches.batch_create(uow(), other_user, "me", [fields("b")], "r1")  # per user
    assert len(store.tasks.rows) == 2


@pytest.mark.parametrize("request_id", ["x" * 101, "bad\nid"])
async def test_malformed_request_id(uow, alice, request_id: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await batches.batch_create(uow(), alice, "me", [fields()], request_id)
    assert caught.value.violations[0].field == "request_id"


async def test_update_refuses_duplicates_and_reports_missing_or_stale(uow, alice) -> None:
    a, b = await batches.batch_create(uow(), alice, "me", [fields("a"), fields("b")], "")
    patch = domain.TaskPatch(fields("new"), frozenset({"title"}))
    with pytest.raises(errors.InvalidArgument) as caught:
        await batches.batch_update(uow(), alice, "me", [(str(a.id), patch, None)] * 2, "")
    assert caught.value.violations[0].field == "tasks[1].id"
    with pytest.raises(errors.NotFound):
        await batches.batch_update(
            uow(), alice, "me", [(str(a.id), patch, None), (str(uuid.uuid4()), patch, None)], ""
        )
    with pytest.raises(errors.Aborted):
        await batches.batch_update(uow(), alice, "me", [(str(b.id), patch, "v7")], "")
    with pytest.raises(errors.InvalidArgument) as bad_etag:
        await batches.batch_update(uow(), alice, "me", [(str(b.id), patch, "7")], "")
    assert bad_etag.value.violations[0].field == "tasks[0].etag"


async def test_foreign_user_id_is_denied(uow, alice) -> None:
    with pytest.raises(errors.PermissionDenied):
        await batches.batch_delete(uow(), alice, str(uuid.uuid4()), [str(uuid.uuid4())], "")
