"""Request bodies. Strict: no ``"2"`` -> ``2`` coercion, and unknown fields are refused.

Shape only: whether a GPU type exists or a webhook target is allowed is the owning service's rule,
answered as INVALID_ARGUMENT with the field, which the gateway renders as 422 like its own checks.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter, ValidationError

_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    # Validated as a URL but forwarded exactly as given (pydantic's Url would normalise it).
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError("must be an absolute http:// or https:// URL") from exc
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


HttpUrlText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        json_schema_extra={"format": "uri"},
        examples=["https://example.com/hook"],
    ),
    AfterValidator(_http_url),
]
Text = Annotated[str, AfterValidator(_no_nul)]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JobCreate(_StrictBody):
    command: Annotated[
        Text,
        Field(min_length=1, max_length=10_000, examples=["python train.py --epochs 3"]),
        AfterValidator(_not_blank),
    ]
    gpu_count: int = Field(default=1, ge=1, le=16)
    gpu_memory_mb: int = Field(
        default=0, ge=0, le=1_048_576, description="Memory needed on each GPU; 0 = any."
    )
    gpu_type: Annotated[Text, Field(min_length=1, max_length=64, examples=["h100-80gb"])] | None = Field(
        default=None, description="A catalog name from GET /v1/gpu-types; absent = any type."
    )
    priority: int = Field(default=50, ge=0, le=100, description="Higher runs first.")
    webhook_url: HttpUrlText | None = Field(default=None, description="Receives this job's lifecycle events.")
    name: Annotated[Text, Field(max_length=200)] | None = None


class JobCancel(_StrictBody):
    reason: Annotated[Text, Field(max_length=500)] | None = None


class WebhookCreate(_StrictBody):
    url: HttpUrlText
    events: list[Annotated[Text, Field(min_length=1, max_length=64, examples=["job.succeeded"])]] = Field(
        default_factory=list, max_length=32, description="Event types to deliver; empty = every job event."
    )
    description: Annotated[Text, Field(max_length=500)] | None = None


class ApiKeyCreate(_StrictBody):
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    scopes: list[Annotated[Text, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=10 * 365 * 24 * 3600, description="Absent: the key never expires."
    )
