"""The routing decision: catalogue, values, policy, the matching round. Pure: no I/O, no clock."""

POLICY_VERSION = "policy-1"
