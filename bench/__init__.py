"""Benchmarks: throughput and latency against real Redis, and the router's scaling (see README.md)."""
