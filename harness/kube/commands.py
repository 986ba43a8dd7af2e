"""``harness submit``, ``harness status`` and ``harness logs``: the command line of ``harness.kube``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from harness.config_file import load_config
from harness.kube import ClusterError
from harness.kube.manifests import DEFAULT_IMAGE, DEFAULT_NAMESPACE, PVC_MOUNT

SUBMIT = "Check the config, ship it as a ConfigMap, create the RayJob, and follow it to the end."
STATUS = "The RayJob's state: KubeRay's jobDeploymentStatus/jobStatus and where it writes."
LOGS = "Print the driver's log (the submitter pod's); with --follow, until the job ends."


def _guard(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a subcommand; a ClusterError becomes ``error: ...`` and exit code 1.

    A ConfigError goes on up to ``harness.cli.main``, which reports it like every
    other command does.
    """

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    return run


def _exit_code(final: dict | None) -> int:
    if final is None:
        return 130
    return 0 if final["jobStatus"] == "SUCCEEDED" and final["jobDeploymentStatus"] == "Complete" else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from harness.kube.client import follow, reattach_hint, submit  # the Kubernetes client loads in ~1 s

    store = args.store or os.environ.get("CAS_STORE") or load_config(args.config).store
    name = submit(
        args.config, cluster=args.cluster, namespace=args.namespace, image=args.image, store=store, follow=False
    )
    if args.no_follow:
        print(reattach_hint(name, args.namespace), file=sys.stderr)
        return 0
    return _exit_code(follow(name, namespace=args.namespace))


def _cmd_status(args: argparse.Namespace) -> int:
    from harness.kube.client import status

    st = status(args.name, namespace=args.namespace)
    for key in (
        "name",
        "namespace",
        "jobDeploymentStatus",
        "jobStatus",
        "message",
        "rayClusterName",
        "dashboardURL",
        "startTime",
        "endTime",
        "store",
        "sweep",
    ):
        if st[key]:
            print(f"{key + ':':21} {st[key]}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from harness.kube.client import logs

    logs(args.name, namespace=args.namespace, follow=args.follow)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``status`` and ``logs`` to the ``harness`` command line."""
    namespace_help = f"Kubernetes namespace (default: {DEFAULT_NAMESPACE})"

    p = subparsers.add_parser(
        "submit", help="run a sweep on Kubernetes as a KubeRay RayJob", description=SUBMIT
    )
    p.add_argument("config", type=Path, help="sweep config YAML")
    p.add_argument(
        "--cluster",
        metavar="NAME",
        help="join this running RayCluster (e.g. cas-shared); default: an own cluster for this job",
    )
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.add_argument(
        "--image",
        default=os.environ.get("CAS_IMAGE", DEFAULT_IMAGE),
        help="harness image (default: $CAS_IMAGE or %(default)s)",
    )
    p.add_argument(
        "--store",
        metavar="URI",
        help=f"s3://..., gs://... or a path under {PVC_MOUNT} (default: $CAS_STORE, else the config's store)",
    )
    p.add_argument("--no-follow", action="store_true", help="return once the RayJob is created")
    p.set_defaults(func=_guard(_cmd_submit))

    p = subparsers.add_parser("status", help="state of a submitted sweep's RayJob", description=STATUS)
    p.add_argument("name", help="RayJob name, as printed by submit")
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.set_defaults(func=_guard(_cmd_status))

    p = subparsers.add_parser("logs", help="driver log of a submitted sweep", description=LOGS)
    p.add_argument("name", help="RayJob name, as printed by submit")
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends (Ctrl-C detaches)")
    p.set_defaults(func=_guard(_cmd_logs))
