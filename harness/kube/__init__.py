"""Run sweeps on Kubernetes: ship the config, start a KubeRay RayJob, follow it to the end.

A sweep's driver (``harness sweep``) runs as a RayJob, either on the lab's shared Ray
cluster (``--cluster cas-shared``, see ``ray_cluster.yaml``) or on an own cluster that the
RayJob creates and deletes after the job. The config travels in a ConfigMap mounted into
the RayJob's submitter pod, whose ``ray job submit`` uploads it as the job's
``working_dir``: that works the same for both kinds of cluster, while a running shared
head could never mount a ConfigMap made after it started. The ConfigMap is owned by the
RayJob, so deleting the RayJob deletes it. Results go to the store (``s3://``, ``gs://``
or a path on the ``cas-store`` PVC), never to the pods, which come and go with the
autoscaler.

``manifests`` builds the objects (pure; the cluster's shape is read from the packaged
``ray_cluster.yaml``), ``client`` talks to the Kubernetes API and follows a job, and
``commands`` adds ``harness submit``, ``status`` and ``logs``.
"""


class ClusterError(RuntimeError):
    """A submission problem the user can fix; its message is one line saying how."""
