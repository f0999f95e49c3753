"""Stack configuration: what a stack is, validated before any resource is made.

``spec`` turns a stack's Pulumi config into one immutable ``StackSpec`` (``spec_database``,
``spec_events`` and ``spec_global`` hold the rules of the database settings, the events slice
and tier 4's global stack); ``catalog`` holds one row of sizes per tier, ``tier`` the shape of
a row, ``capacity`` what is computed from a row (connection budgets, PostgreSQL memory),
``overrides`` the single catalog values a stack replaces, ``versions`` the pinned Kubernetes,
add-on and chart versions, and ``project`` the config keys and defaults ``Pulumi.yaml``
declares. Everything here is pure: tests call it without Pulumi.
"""
