"""The security posture section of the plan diff: each kind of broadening fails the diff,
its narrowing passes, a broadening named on purpose passes; and one real change of the
program (the trainer may read the whole FERPA drop bucket) through the diff command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools import diff, posture, revision
from tools.harness import Options, Resource, make_urn

STACK, PROJECT = "tier3", "student-success"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
DROP = "arn:aws:s3:::district-drop-bucket"
OIDC = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC"


def resource(type_: str, name: str, inputs: dict[str, Any]) -> Resource:
    urn = make_urn("", type_, name, stack=STACK, project=PROJECT)
    return Resource(
        type=type_,
        name=name,
        urn=urn,
        id=f"{name}-id",
        parent="",
        custom=True,
        inputs=inputs,
        secret_paths=frozenset(),
        options=Options(),
        previous_urns=frozenset({urn}),
    )


def role_policy(*statements: dict[str, Any], as_text: bool = True) -> Resource:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    policy = json.dumps(document) if as_text else document
    return resource(ROLE_POLICY, "trainer-policy", {"role": "trainer-role-id", "policy": policy})


def read_exports(action: Any = "s3:GetObject", resource_: Any = f"{DROP}/exports/*") -> Any:
    return {"Sid": "ReadExports", "Effect": "Allow", "Action": action, "Resource": resource_}


def trust(principal: dict[str, Any], condition: dict[str, Any] | None = None) -> Resource:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition:
        statement["Condition"] = condition
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    return resource(ROLE, "trainer-role", {"assumeRolePolicy": document})


def irsa(subject: str, operator: str = "StringEquals") -> Resource:
    return trust({"Federated": OIDC}, {operator: {f"{ISSUER}:sub": subject}})


def ingress(cidr: str, from_port: int = 443, to_port: int = 443) -> Resource:
    inputs = {
        "securityGroupId": "alb-sg-id",
        "ipProtocol": "tcp",
        "fromPort": float(from_port),
        "toPort": float(to_port),
        "cidrIpv4": cidr,
    }
    return resource("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "alb-in", inputs)


def cluster(public: bool, *cidrs: str) -> Resource:
    vpc: dict[str, Any] = {"endpointPublicAccess": public, "endpointPrivateAccess": True}
    if cidrs:
        vpc["publicAccessCidrs"] = list(cidrs)
    return resource("aws:eks/cluster:Cluster", "cluster-eks", {"vpcConfig": vpc})


def access(scope: dict[str, Any], policy: str = "AmazonEKSViewPolicy") -> Resource:
    inputs = {
        "clusterName": "cluster-eks-id",
        "principalArn": "arn:aws:iam::123456789012:role/support",
        "policyArn": f"arn:aws:eks::aws:cluster-access-policy/{policy}",
        "accessScope": scope,
    }
    return resource("aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "support", inputs)


def verdict(base: list[Resource], head: list[Resource], *allowed: str) -> tuple[str, bool]:
    return posture.render(posture.compare(base, head), allowed)


NAMESPACE = {"type": "namespace", "namespaces": ["student-success"]}
BROADENINGS = {
    "a new action": (
        [role_policy(read_exports())],
        [role_policy(read_exports(["s3:GetObject", "s3:DeleteObject"]))],
    ),
    "a wildcard action": ([role_policy(read_exports())], [role_policy(read_exports("s3:*"))]),
    "a wildcard resource": (
        [role_policy(read_exports())],
        [role_policy(read_exports(resource_=f"{DROP}/*"))],
    ),
    "a new principal": (
        [trust({"Service": "sagemaker.amazonaws.com"})],
        [trust({"Service": ["sagemaker.amazonaws.com", "ec2.amazonaws.com"]})],
    ),
    "a new account": (
        [trust({"AWS": "arn:aws:iam::123456789012:root"})],
        [trust({"AWS": ["arn:aws:iam::123456789012:root", "210987654321"]})],
    ),
    "a looser IRSA subject": (
        [irsa("system:serviceaccount:student-success:trainer")],
        [irsa("system:serviceaccount:student-success:*", "StringLike")],
    ),
    "a wider CIDR": ([ingress("10.20.0.0/16")], [ingress("10.0.0.0/8")]),
    "more ports": ([ingress("10.20.0.0/16")], [ingress("10.20.0.0/16", 0, 65535)]),
    "a new public endpoint": ([cluster(False)], [cluster(True, "203.0.113.10/32")]),
    "a public endpoint open wider": (
        [cluster(True, "203.0.113.10/32")],
        [cluster(True, "203.0.113.0/24")],
    ),
    "an EKS access policy cluster-wide": ([access(NAMESPACE)], [access({"type": "cluster"})]),
}


@pytest.mark.parametrize("kind", sorted(BROADENINGS))
def test_a_broadening_fails_and_its_narrowing_passes(kind: str) -> None:
    narrow, wide = BROADENINGS[kind]
    text, refused = verdict(narrow, wide)
    assert refused, text
    assert "BROADENS" in text and "--allow-broadening" in text
    text, refused = verdict(wide, narrow)
    assert not refused, text
    assert "narrows" in text and "BROADENS" not in text


@pytest.mark.parametrize("kind", sorted(BROADENINGS))
def test_a_broadening_named_by_urn_passes(kind: str) -> None:
    narrow, wide = BROADENINGS[kind]
    text, refused = verdict(narrow, wide, wide[0].urn)
    assert not refused, text
    assert "allowed with --allow-broadening" in text


def test_a_broadening_named_by_its_statement_sid_passes() -> None:
    base, head = [role_policy(read_exports())], [role_policy(read_exports("s3:*"))]
    assert verdict(base, head, "ReadExports")[1] is False
    assert verdict(base, head, "SomethingElse")[1] is True


def test_reformatting_a_policy_document_is_no_change() -> None:
    """JSON text or an object, a string or a one-item list, case of the action, order."""
    before = role_policy(read_exports("s3:GetObject", f"{DROP}/exports/*"))
    after = role_policy(read_exports(["s3:getobject"], [f"{DROP}/exports/*"]), as_text=False)
    assert posture.compare([before], [after]) == []
    text, refused = verdict([before], [after])
    assert "no IAM, security group or public exposure change" in text and not refused


def test_removing_a_deny_broadens_and_adding_one_narrows() -> None:
    deny = {"Sid": "TlsOnly", "Effect": "Deny", "Action": "s3:*", "Resource": f"{DROP}/*"}
    deny["Condition"] = {"Bool": {"aws:SecureTransport": "false"}}
    with_deny = resource(
        "aws:s3/bucketPolicy:BucketPolicy", "drop", {"policy": {"Statement": [deny]}}
    )
    without = resource("aws:s3/bucketPolicy:BucketPolicy", "drop", {"policy": {"Statement": []}})
    assert verdict([with_deny], [without])[1] is True
    assert verdict([without], [with_deny])[1] is False


def test_an_added_condition_narrows_and_a_narrower_grant_passes() -> None:
    wide = role_policy(read_exports("s3:*", f"{DROP}/*"))
    narrow = role_policy(read_exports("s3:GetObject", f"{DROP}/exports/*"))
    assert verdict([wide], [narrow])[1] is False
    unconditioned = trust({"Federated": OIDC})
    assert (
        verdict([unconditioned], [irsa("system:serviceaccount:student-success:trainer")])[1]
        is False
    )


def test_a_new_managed_policy_attachment_and_an_internet_facing_load_balancer_broaden() -> None:
    attach = resource(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "admin",
        {"role": "trainer-role-id", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    text, refused = verdict([], [attach])
    assert refused and "managed policy arn:aws:iam::aws:policy/AdministratorAccess" in text
    internal = resource("aws:lb/loadBalancer:LoadBalancer", "alb", {"internal": True})
    public = resource("aws:lb/loadBalancer:LoadBalancer", "alb", {"internal": False})
    assert verdict([internal], [public])[1] is True
    assert verdict([public], [internal])[1] is False


def test_a_new_cloudfront_origin_broadens() -> None:
    def distribution(*domains: str) -> Resource:
        origins = [{"originId": d, "domainName": d} for d in domains]
        return resource("aws:cloudfront/distribution:Distribution", "edge", {"origins": origins})

    text, refused = verdict(
        [distribution("api.example.org")],
        [distribution("api.example.org", "models.s3.amazonaws.com")],
    )
    assert refused and "CloudFront serves origin models.s3.amazonaws.com" in text


def test_the_diff_command_fails_on_broadening_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sides = (
        {STACK: revision.Evaluation([ingress("10.20.0.0/16")], 100.0)},
        {STACK: revision.Evaluation([ingress("0.0.0.0/0")], 100.0)},
    )
    monkeypatch.setattr(revision, "evaluate", lambda base, stacks: sides)
    assert diff.main(["origin/main", STACK]) == 1
    assert "from cidr 0.0.0.0/0" in capsys.readouterr().out
    urn = ingress("0.0.0.0/0").urn
    assert diff.main(["origin/main", STACK, "--allow-broadening", urn]) == 0
    monkeypatch.setenv(posture.ENV, urn)
    assert diff.main(["origin/main", STACK]) == 0


def test_reading_the_whole_ferpa_drop_bucket_is_refused_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A throwaway repository of this program: the trainer's read of the district's exports
    widened from ``exports/*`` to the whole drop bucket, diffed through the command."""
    from tests.tools.test_diff import throwaway_repo

    throwaway_repo(tmp_path)
    iam = tmp_path / "components" / "shared" / "iam.py"
    narrow = '"Resource": f"{drop_bucket_arn}/{DROP_PREFIX}/*",'
    assert narrow in iam.read_text()
    iam.write_text(iam.read_text().replace(narrow, '"Resource": f"{drop_bucket_arn}/*",'))

    sides = revision.evaluate("HEAD", ["dev"], repo=tmp_path)
    monkeypatch.setattr(revision, "evaluate", lambda base, stacks: sides)
    assert diff.main(["HEAD", "dev"]) == 1
    out = capsys.readouterr().out
    [added] = [line for line in out.splitlines() if line.startswith("  + BROADENS")]
    assert "role workloads-trainer-role (ReadExports): Allow s3:getobject" in added
    assert added.endswith("district-drop-bucket-ce650e0de0db1302f/*")
    assert "  - narrows  IAM    role workloads-trainer-role (ReadExports)" in out
    [policy] = [r for r in sides[1]["dev"].resources if r.name == "workloads-trainer-policy"]
    assert diff.main(["HEAD", "dev", "--allow-broadening", policy.urn]) == 0
    assert diff.main(["HEAD", "dev", "--allow-broadening", "ReadExports"]) == 0


def test_a_new_stack_lists_its_grants_without_refusing() -> None:
    text, refused = posture.section([], [ingress("0.0.0.0/0")], [])
    assert not refused and "BROADENS" in text and "a new stack" in text
    assert posture.section([ingress("10.0.0.0/8")], [ingress("0.0.0.0/0")], [])[1] is True


def test_naming_a_role_where_its_account_was_named_broadens() -> None:
    """The account's root delegates to IAM; a named role needs no identity policy."""
    root = {"AWS": "arn:aws:iam::123456789012:root"}
    role = {"AWS": ["arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:role/x"]}
    assert verdict([trust(root)], [trust(role)])[1] is True
