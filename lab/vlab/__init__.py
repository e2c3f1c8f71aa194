"""virtlab: a small cluster of libvirt hypervisors in Linux namespaces on one machine.

Modules: config (names, addresses, paths), proc (commands, processes, errors),
install (Debian packages), net (bridge, namespaces, veths), hosts (per-host mounts and
daemons), storage (GlusterFS and iSCSI on the storage host), guests (boot artefacts,
heartbeat guests), faults (link, rate, loss, daemon faults), inventory (Ansible
inventory and SSH trust), lab (up/down/status orchestration), cli, control (the lab from
the control node for the tests and the benchmark: the CLI, reads, Ansible runs of the modules).
"""
