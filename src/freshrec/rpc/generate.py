"""Regenerate ``freshrec_pb2.py`` and ``freshrec_pb2_grpc.py`` from ``freshrec.proto``.

The generated modules are committed, so a clean clone needs only ``grpcio`` and
``protobuf`` at run time; ``grpcio-tools`` (a dev dependency) is needed only to regenerate
them after changing the proto: ``python -m freshrec.rpc.generate``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]


def main() -> int:
    from grpc_tools import protoc

    include = resources.files("grpc_tools") / "_proto"
    return protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{SRC}",
            f"-I{include}",
            f"--python_out={SRC}",
            f"--grpc_python_out={SRC}",
            "freshrec/rpc/freshrec.proto",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
