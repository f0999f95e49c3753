"""PostgreSQL on RDS: primary (Multi-AZ where the tier says), read replicas behind one DNS
name, a parameter group derived from the tier, RDS Proxy for pooling, KMS everywhere,
credentials in Secrets Manager, the database's alarms, and an opt-in cross-region replica for
reporting."""

from components.database.args import DatabaseArgs, ReportingReplica
from components.database.component import Database

__all__ = ["Database", "DatabaseArgs", "ReportingReplica"]
