#!/usr/bin/env bash
# Regenerates the Python gRPC package `gpufleet.v1` from the .proto files beside this script.
# Output lands next to the sources (proto/gpufleet/v1/*_pb2*.py, typed .pyi stubs included), so
# the import path equals the proto package. Generated files are committed; never edit them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python}"
cd "$here"
rm -f gpufleet/v1/*_pb2*.py gpufleet/v1/*_pb2*.pyi
"$py" -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  gpufleet/v1/*.proto
touch gpufleet/__init__.py gpufleet/v1/__init__.py gpufleet/py.typed
