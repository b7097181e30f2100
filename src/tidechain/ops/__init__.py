"""The operator's side of `tide`: the verbs that run the node's own code (`tide init`,
`tide node start|keygen|join`, `tide cluster up|down`) and the directories they write.

This package composes the node (node/), its REST API (api/) and the client's files
(client/files.py) with the CLI's shared plumbing (cli/base.py); neither the node nor the
CLI imports it. `tidechain.tide` is the entry point that puts both verb sets into one
`tide` command.
"""
