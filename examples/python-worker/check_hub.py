#!/usr/bin/env python3
"""Asks a running ClusterEnv hub, with nothing but stock grpcio, whether it is serving and what it serves.

    python3 check_hub.py 127.0.0.1:5555

Prints one JSON object: {"target", "health", "worker_hub_health", "services"}; exits 0 when the hub is SERVING, 1 when
it answers but is not serving, 2 when it cannot be reached. The health and reflection messages are generated at start
from protos/ (the public field layouts of grpc.health.v1 and grpc.reflection.v1alpha).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))


def load(names):
    """Generates the _pb2 modules into a scratch folder, imports them, and removes the folder."""
    proto_dir = os.path.join(HERE, "protos")
    with tempfile.TemporaryDirectory(prefix="clusterenv-check-") as out:
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}", *names], check=True)
        sys.path.insert(0, out)
        import health_pb2  # noqa: E402
        import reflection_pb2  # noqa: E402
        sys.path.remove(out)
    return health_pb2, reflection_pb2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of the hub, e.g. 127.0.0.1:5555")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer")
    args = parser.parse_args()
    health_pb2, reflection_pb2 = load(["health.proto", "reflection.proto"])
    status_name = health_pb2.HealthCheckResponse.ServingStatus.Name

    with grpc.insecure_channel(args.target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                    response_deserializer=health_pb2.HealthCheckResponse.FromString)
        reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        try:
            overall = check(health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
            hub = check(health_pb2.HealthCheckRequest(service="clusterenv.v1.WorkerHub"), timeout=args.timeout)
            replies = list(reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=args.timeout))
        except grpc.RpcError as e:
            print(json.dumps({"target": args.target, "error": f"{e.code().name}: {e.details()}"}))
            return 2
    services = sorted(s.name for r in replies for s in r.list_services_response.service)
    print(json.dumps({"target": args.target, "health": status_name(overall.status),
                      "worker_hub_health": status_name(hub.status), "services": services}))
    return 0 if overall.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
