"""Drop-in layers for scripts written against older job libraries.

``jobgraph.compat.asynciojobs`` and ``jobgraph.compat.artron`` offer the public names and
documented behaviour of those libraries, running on jobgraph's engine: a script changes
its import line and keeps working. docs/migrating.md lists what differs, and why.
"""
