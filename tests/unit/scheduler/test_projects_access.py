"""The project rules (domain/access.py, service_layer/projects.py) and images on a job's spec, with no I/O."""

from __future__ import annotations

import uuid

import pytest

from services.scheduler.domain.access import Access, project_id
from services.scheduler.domain.spec import check_image, job_spec, request_fingerprint
from services.scheduler.service_layer.projects import ProjectArchived, ProjectState, admit_project
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

P1, P2 = uuid.uuid4(), uuid.uuid4()


class Directory:
    def __init__(self, known: dict[uuid.UUID, ProjectState]) -> None:
        self.known = known
        self.asked: list[tuple[str | None, uuid.UUID]] = []

    async def state(self, api_key: str | None, project: uuid.UUID) -> ProjectState | None:
        self.asked.append((api_key, project))
        return self.known.get(project)


@pytest.mark.parametrize(
    ("access", "project", "writes"),
    [
        (Access("owner"), P1, True),
        (Access("admin"), P1, True),
        (Access("member", project_roles={P1: "owner"}), P1, True),
        (Access("member", project_roles={P1: "contributor"}), P1, True),
        (Access("member", project_roles={P1: "viewer"}), P1, False),
        (Access("member", project_roles={P2: "owner"}), P1, False),
        (Access("member"), None, True),  # a job without a project: as before projects
    ],
)
def test_who_writes_in_a_project(access: Access, project: uuid.UUID | None, writes: bool) -> None:
    if writes:
        access.require_write(project)
    else:
        with pytest.raises(PermissionDenied) as err:
            access.require_write(project)
        assert err.value.field == "project_id"
    assert access.sees(project)  # reads stay organization-wide


def test_a_bound_key_sees_only_its_project_and_submits_into_it() -> None:
    bound = Access("owner", bound_project=P1)
    assert bound.sees(P1) and not bound.sees(P2) and not bound.sees(None)
    assert bound.submit_project(None) == P1 and bound.submit_project(P1) == P1
    with pytest.raises(PermissionDenied):
        bound.submit_project(P2)


async def test_admit_project_asks_identity_then_the_role() -> None:
    directory = Directory({P1: ProjectState.ACTIVE, P2: ProjectState.ARCHIVED})
    member = Access("member", project_roles={P1: "contributor", P2: "owner"})
    assert await admit_project(member, P1, "gpf_key", directory) == P1
    assert directory.asked == [("gpf_key", P1)]
    assert await admit_project(member, None, "gpf_key", directory) is None
    assert len(directory.asked) == 1  # no project: nothing to ask
    with pytest.raises(ProjectArchived) as archived:
        await admit_project(member, P2, "gpf_key", directory)
    assert archived.value.field == "project_id"
    # unknown (or another organization's) before any role is looked at: never "forbidden"
    with pytest.raises(NotFound):
        await admit_project(Access("member"), uuid.uuid4(), "gpf_key", directory)
    with pytest.raises(PermissionDenied):
        await admit_project(Access("member", project_roles={P1: "viewer"}), P1, "gpf_key", directory)
    with pytest.raises(Unavailable):
        await admit_project(member, P1, "gpf_key", None)


def test_a_malformed_project_id_is_not_found() -> None:
    assert project_id("") is None
    assert project_id(str(P1)) == P1
    with pytest.raises(NotFound):
        project_id("nope")


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "ubuntu:22.04",
        "nvcr.io/nvidia/pytorch:24.01-py3",
        "localhost:5000/team/img@sha256:" + "a" * 64,
    ],
)
def test_sane_images_are_taken(image: str) -> None:
    assert check_image(image) == image
    assert job_spec(command="x", gpu_count=1, image=image).image == image


@pytest.mark.parametrize(
    "image", ["a b", "x;rm -rf /", "-x", "UPPER", "img:" + "t" * 200, "i" * 600, "a\x00b"]
)
def test_odd_images_are_refused_naming_the_field(image: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        job_spec(command="x", gpu_count=1, image=image)
    assert err.value.field == "image"


def test_fingerprints_of_requests_without_project_or_image_are_unchanged() -> None:
    plain = job_spec(command="x", gpu_count=1)
    assert request_fingerprint(plain) == request_fingerprint(job_spec(command="x", gpu_count=1, image=""))
    with_project = job_spec(command="x", gpu_count=1, project_id=P1)
    with_image = job_spec(command="x", gpu_count=1, image="ubuntu")
    assert len({request_fingerprint(s) for s in (plain, with_project, with_image)}) == 3
