"""The runtime: the `cascade` command, process wiring, topic provisioning, the metrics and health server.

Layers run one way: contracts <- services <- runtime; infra (local broker, certificates, ACLs, manifests) is
used by the runtime and never imports services.
"""
