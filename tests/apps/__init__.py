"""Test-only applications: each one folder, registered by a test with one line
(`default_registry(extra=[app.APP])`), never by the built-in list."""
