"""The app on Kubernetes: prediction API (Deployment, Service, HPA, PDB) bound to the
``ApiLoadBalancer``'s target group by the AWS Load Balancer Controller's TargetGroupBinding,
the nightly training and weekly archival CronJobs, the event worker and its autoscaling, IRSA
service accounts, app config and secrets, network policies, and the training-failure alarm.
"""

from components.workloads.args import WorkloadsArgs
from components.workloads.component import Workloads

__all__ = ["Workloads", "WorkloadsArgs"]
