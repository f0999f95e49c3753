"""Prometheus for the app (Amazon Managed Service for Prometheus and its managed collector),
alert rules routed to the alarm topic, and Managed Grafana dashboards where the tier asks."""

from components.monitoring.component import Monitoring, MonitoringArgs

__all__ = ["Monitoring", "MonitoringArgs"]
