"""Student Success Prediction System: read the stack's spec, compose components, export."""

import pulumi

from components.alarms import AlarmTopic, AlarmTopicArgs
from components.network import Network, NetworkArgs
from components.spec import load_spec

spec = load_spec()
tier = spec.tier

alarms = AlarmTopic("alarms", AlarmTopicArgs(email=spec.alarm_email, tags=spec.tags()))

network = Network(
    "network",
    NetworkArgs(
        cidr=spec.vpc_cidr,
        az_count=tier.az_count,
        nat_mode=tier.nat_mode,
        flow_log_retention_days=tier.log_retention_days,
        tags=spec.tags(),
    ),
)

# -- data tier (issue 3): database, cache -------------------------------------------------

# -- compute (issue 4): registry, storage, cluster, workloads ------------------------------

# -- edge, inference, dashboard (issue 5) ---------------------------------------------------

pulumi.export("tier", tier.name)
pulumi.export("alarm_topic_arn", alarms.topic_arn)
pulumi.export("vpc_id", network.vpc_id)
pulumi.export("availability_zones", network.availability_zones)
pulumi.export("public_subnet_ids", network.public_subnet_ids)
pulumi.export("private_subnet_ids", network.private_subnet_ids)
pulumi.export("isolated_subnet_ids", network.isolated_subnet_ids)
