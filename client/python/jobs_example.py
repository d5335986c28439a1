#!/usr/bin/env python3
"""Python client of linvideo.v1.Jobs: start a LinVideo conversion of a served model and watch it,
or watch a job that is already running. Uses the server's Admin token.

    python3 client/python/jobs_example.py --server 127.0.0.1:50051 --token_file token \\
        --base default --linear_layers 3 --activate            # start, then watch to the end
    python3 client/python/jobs_example.py --token_file token --watch JOB_ID

Exit status 0 when the job succeeded, 1 when it ended otherwise, 2 on an RPC error.
"""
import argparse
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example import load_stubs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--token_file", default="")
    ap.add_argument("--watch", default="", help="watch this job id instead of starting one")
    ap.add_argument("--base", default="default")
    ap.add_argument("--linear_layers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--trajectories", type=int, default=0)
    ap.add_argument("--activate", action="store_true")
    args = ap.parse_args()

    pb, pb_grpc = load_stubs("jobs")
    stub = pb_grpc.JobsStub(grpc.insecure_channel(args.server))
    metadata = []
    if args.token_file:
        with open(args.token_file) as f:
            metadata.append(("authorization", "Bearer " + f.read().strip()))
    try:
        job_id = args.watch
        if not job_id:
            spec = pb.JobSpec(base=args.base, activate=args.activate,
                              convert=pb.ConvertJob(linear_layers=args.linear_layers,
                                                    steps=args.steps,
                                                    trajectories=args.trajectories))
            job = stub.StartJob(pb.StartJobRequest(spec=spec), metadata=metadata, timeout=60)
            job_id = job.id
            print(f"started {job_id}")
        for job in stub.WatchJob(pb.WatchJobRequest(id=job_id), metadata=metadata):
            p = job.progress
            losses = " ".join(f"{k}={v:.3g}" for k, v in sorted(p.losses.items()))
            print(f"{pb.JobState.Name(job.state)} {p.stage} {p.step}/{p.total} "
                  f"{100 * p.fraction:.0f}% {losses}", flush=True)
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    print(f"job {job.id}: {pb.JobState.Name(job.state)} output={job.output_path} "
          f"version={job.checkpoint_version} {job.error}")
    return 0 if job.state == pb.JOB_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
