"""Test support shared by the lab tests, the integration tests and the fault suite.

`support.lab` drives the lab (guests, heartbeats, faults) and `support.invariant` is THE
checker of the exactly-one-host invariant: every test that moves a guest ends with it.
"""
