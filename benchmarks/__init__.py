"""Throughput and memory benchmarks (plain scripts, not timed tests); see docs/performance.md.

A package so that the generator and the floor can be imported by the
scripts and by the tests that keep the comparison honest.
"""
