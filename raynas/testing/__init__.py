"""Test helpers shipped with raynas: conformance suites that every space (``spaces``) and
every strategy passes, for use in the tests of raynas and of code built on it."""
