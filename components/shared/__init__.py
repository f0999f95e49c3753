"""What the components share, so that none imports another.

``contract`` holds the ports, paths, naming rules and the typed bundles a producer hands its
consumers (``NetworkRef``, ``ClusterRef``, ``BucketRef``, ``DatabaseConnection``...) and how a
child is owned by its component; ``stack`` the one bundle every component takes from its
stack (tags, protection, alarm topic, log retention). The builders make one kind of resource
one way everywhere: ``kms`` (customer-managed keys), ``log_groups`` (a log key and the
encrypted log groups it serves), ``iam`` (policy documents, pure), ``alarms``,
``security_groups``, ``certificates``, ``waf``, ``bucket_controls`` and ``k8s_manifests``
(the app's Kubernetes specs, pure).
"""
