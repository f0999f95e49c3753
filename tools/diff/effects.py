"""What a change does beyond its properties: whether a replacement deletes first, and what
an operator sees happen (pods rolling, nodes rolling, a Job running again, a refusal)."""

from __future__ import annotations

from tools import replacements
from tools.diff.model import Change
from tools.flat import fmt

# pulumi-aws ``provider/resource_overrides.go``: these types are always deleted before they
# are replaced (``DeleteBeforeReplace: true``).
AWS_DELETE_FIRST = frozenset(
    {
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
        "aws:iam/userPolicyAttachment:UserPolicyAttachment",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter",
        "aws:efs/mountTarget:MountTarget",
    }
)
# The input pulumi-aws autonames (``provider/autonaming.go``: ``name``; the overrides in
# ``provider/resource_overrides.go`` for the others). Set by the program, the name is fixed,
# and the bridge deletes before replacing (pulumi-terraform-bridge ``provider.go`` Diff,
# ``nameRequiresDeleteBeforeReplace``): two resources cannot hold one name.
AWS_NAME_INPUT = {
    "aws:rds/instance:Instance": "identifier",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:elasticache/replicationGroup:ReplicationGroup": "replicationGroupId",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
}
_WORKLOADS = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
)
# EKS managed node group updates (AWS EKS user guide, "Understand each phase of node
# updates"): pods are evicted with the eviction API, so PDBs hold, for up to 15 minutes a node.
NODES_ROLL = (
    "every node rolls: new nodes start, the old ones are drained (PDBs honoured, "
    "{unavailable} at a time, failing after 15 minutes a node) and terminated"
)
NODES_REPLACED = (
    "a new node group comes up, then the old one is drained: PDBs are honoured for up to 15 "
    "minutes a node, then its pods are deleted"
)


def delete_first(change: Change) -> bool:
    """Whether the engine deletes the old resource before creating its replacement."""
    r = change.resource
    if change.kind != "replace":
        return False
    if r.options.delete_before_replace:
        return True
    if r.type.startswith("kubernetes:"):
        # pulumi-kubernetes Diff (provider.go): a named, not autonamed object keeps its name.
        annotations = r.get("metadata.annotations") or {}
        return bool(r.get("metadata.name")) and "pulumi.com/autonamed" not in annotations
    if r.type.startswith("aws:"):
        name_input = AWS_NAME_INPUT.get(r.type, "name")
        return r.type in AWS_DELETE_FIRST or bool(r.inputs.get(name_input))
    return False


def _paths(change: Change) -> list[str]:
    return [replacements.normalized(p.path) for p in change.properties]


def effects(change: Change) -> list[str]:
    """What ``change`` makes happen, in an operator's words."""
    r, paths = change.resource, _paths(change)
    found = []
    if change.kind == "replace" and change.protected:
        found.append("pulumi up refuses: the resource is protected (unprotect it first)")
    rolls = any(replacements.under(p, "spec.template") for p in paths)
    if change.kind == "update" and r.type in _WORKLOADS and rolls:
        found.append("its pods roll (a rolling update of every replica)")
    runs = any(replacements.under(p, "spec.jobTemplate") for p in paths)
    if change.kind == "update" and r.type == "kubernetes:batch/v1:CronJob" and runs:
        found.append("the next scheduled runs use the new template")
    if change.kind == "replace" and r.type == "kubernetes:batch/v1:Job":
        found.append("the Job runs again")
    if r.type == "aws:eks/nodeGroup:NodeGroup":
        if change.kind == "replace":
            found.append(NODES_REPLACED)
        elif any(replacements.under(p, "launchTemplate.version") for p in paths):
            share = r.get("updateConfig.maxUnavailablePercentage")
            unavailable = f"{fmt(share)}% of the nodes" if share else "one node"
            found.append(NODES_ROLL.format(unavailable=unavailable))
    return found


def annotate(changes: list[Change]) -> None:
    """Set each change's ``delete_first`` and ``effects``."""
    for change in changes:
        change.delete_first = delete_first(change)
        change.effects = effects(change)
