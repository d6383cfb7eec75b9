"""The generated protobuf and gRPC modules, built on first import if needed.

Import wire types from here (`from serving.protos import pb, pb_grpc, events_pb`), never from
`serving._generated` directly: this module makes sure the generated code exists and matches
`protos/` first.
"""

from __future__ import annotations

from serving.build_protos import ensure_generated

ensure_generated()

from serving._generated.vpt.events.v1 import events_pb2 as events_pb  # noqa: E402
from serving._generated.vpt.serving.v1 import generation_service_pb2 as pb  # noqa: E402
from serving._generated.vpt.serving.v1 import (  # noqa: E402
    generation_service_pb2_grpc as pb_grpc,
)
from serving._generated.vpt.serving.v1 import model_admin_service_pb2 as admin_pb  # noqa: E402
from serving._generated.vpt.serving.v1 import (  # noqa: E402
    model_admin_service_pb2_grpc as admin_pb_grpc,
)
from serving._generated.vpt.serving.v1 import types_pb2 as types_pb  # noqa: E402

GENERATION_SERVICE = pb.DESCRIPTOR.services_by_name["GenerationService"].full_name
MODEL_ADMIN_SERVICE = admin_pb.DESCRIPTOR.services_by_name["ModelAdminService"].full_name

__all__ = [
    "GENERATION_SERVICE",
    "MODEL_ADMIN_SERVICE",
    "admin_pb",
    "admin_pb_grpc",
    "events_pb",
    "pb",
    "pb_grpc",
    "types_pb",
]
