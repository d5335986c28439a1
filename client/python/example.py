#!/usr/bin/env python3
"""Minimal Python client of linvideo-server.

Generates the gRPC stubs from proto/ at start-up (Debian: python3-grpcio, python3-grpc-tools), lists
the models and streams one generation to a file.

    python3 client/python/example.py --server 127.0.0.1:50051 --prompt "a red ball" --out ball.mp4
"""
import argparse
import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def load_stubs(name="generation"):
    """Generates the stubs of every proto once; returns (NAME_pb2, NAME_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="linvideo_stubs_")
    protos = ["linvideo/v1/generation.proto", "linvideo/v1/admin.proto", "linvideo/v1/jobs.proto"]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", "-I" + PROTO_DIR, "-I" + include, "--python_out=" + out, "--grpc_python_out=" + out]
    if protoc.main(args + protos) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    return (importlib.import_module(f"linvideo.v1.{name}_pb2"),
            importlib.import_module(f"linvideo.v1.{name}_pb2_grpc"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1:50051",
                    help="HOST:PORT, or several replicas: dns:///NAME:PORT, ipv4:A:P,B:P")
    ap.add_argument("--lb_policy", choices=["pick_first", "round_robin"], default="pick_first",
                    help="round_robin spreads calls over every address the target resolves to")
    ap.add_argument("--prompt", default="a red ball bouncing")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    pb, pb_grpc = load_stubs()
    channel = grpc.insecure_channel(args.server,
                                    options=[("grpc.lb_policy_name", args.lb_policy)])
    stub = pb_grpc.GenerationStub(channel)
    for m in stub.ListModels(pb.ListModelsRequest(), timeout=args.timeout).models:
        print(f"model {m.name} v{m.checkpoint_version} max {m.max_width}x{m.max_height}")

    request = pb.GenerateRequest(prompt=args.prompt, steps=args.steps, seed=args.seed,
                                 format=pb.OUTPUT_FORMAT_MP4)
    video = bytearray()
    try:
        for event in stub.Generate(request, timeout=args.timeout):
            kind = event.WhichOneof("event")
            if kind == "queued":
                print(f"queued at position {event.queued.position}")
            elif kind == "progress":
                print(f"step {event.progress.step}/{event.progress.total_steps}")
            elif kind == "chunk":
                video += event.chunk.data
            elif kind == "completed":
                print(f"done in {event.completed.stats.total_seconds:.2f}s, {len(video)} bytes")
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    with open(args.out, "wb") as f:
        f.write(video)
    return 0


if __name__ == "__main__":
    sys.exit(main())
