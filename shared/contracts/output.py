"""Internal job-output topic contract (``gpufleet.output.v1``): a job attempt's output, in order.

The node agent reads what a job prints (stdout and stderr interleaved, as the job's output file holds
them) and ships it in chunks keyed by job id, so one partition carries one job's chunks in order.
``offset`` is the chunk's first byte in that attempt's output; the last chunk of an attempt has
``eof`` set (and usually no data), sent once the job's last process is gone. A chunk may be shipped
again (an agent restarted and re-reads the output from the start, a redelivery): the consumer keeps
each byte once, by offset. Not part of the public AsyncAPI: monitoring alone consumes it.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

JOB_OUTPUT_CHUNK = "gpufleet.job.output_chunk"

# The most one chunk may carry (the agent ships at most 64 KiB at a time; this leaves room).
MAX_CHUNK_BYTES = 1024 * 1024


class JobOutputChunkV1(BaseModel):
    # ``data`` is raw bytes in Python, base64 (URL-safe alphabet, padded) in the JSON payload.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    job_id: UUID
    attempt: int = Field(ge=0, description="the job's attempt (1 for the first run) this output is of")
    organization_id: UUID
    offset: int = Field(ge=0, description="position of the first byte of data in the attempt's output")
    data: bytes = Field(default=b"", max_length=MAX_CHUNK_BYTES)
    eof: bool = Field(default=False, description="the attempt's output ends at offset + len(data)")
    # Added with attribution (optional: older chunks decode unchanged). Monitoring keeps a chunk only
    # when its attempt was placed on this node; organization_id above is not used (docs/attribution.md).
    node_id: UUID | None = Field(default=None, description="the registered node whose agent sent it")


EVENT_TYPES: dict[str, type[BaseModel]] = {JOB_OUTPUT_CHUNK: JobOutputChunkV1}
