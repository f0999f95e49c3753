"""PostgreSQL on RDS: primary (Multi-AZ where the tier says), read replicas behind one DNS
name, a parameter group derived from the tier, RDS Proxy for pooling, KMS everywhere,
credentials in Secrets Manager, and the database's alarms."""

from components.database.args import DatabaseArgs
from components.database.component import Database

__all__ = ["Database", "DatabaseArgs"]
