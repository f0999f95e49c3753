"""The infrastructure of the Student Success Prediction System, by kind.

- ``components.config``: the stack's configuration (the validated spec, the tier catalog and
  its row shape, the stack overrides, the pinned cluster versions), pure data and rules;
- ``components.shared``: what the components share (the contract of ports, names and
  bundles, and the builders of KMS keys, encrypted log groups, IAM documents, alarms,
  security-group rules, certificates, WAF rules, bucket controls and Kubernetes specs);
- every other module or package here is one ``ComponentResource`` (``network``,
  ``database``, ``cluster``, ``workloads``...), which imports only the two above, never
  another component.
"""
