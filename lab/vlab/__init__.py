"""virtlab: a small cluster of libvirt hypervisors on one machine, each a Debian machine of its
own (systemd-nspawn, systemd as PID 1) on a chosen release.

Modules: config (names, addresses, paths, instances), proc (commands, processes, errors),
install (the control node's Debian packages), layout (which release each host runs), images
(host images: debootstrap, cached), machine (a host's overlay root, boot, power, reboot),
supervisor (boots a machine again after a reboot), provision (a new host's identity and
config), services (its systemd units: libvirt, firewalld, sshd), net (bridge, network
namespaces, veths), storage (GlusterFS and iSCSI on the storage host, the shared mount),
guests (boot artefacts, heartbeat guests), faults (link, rate, loss, daemon, power, reboot),
inventory (Ansible inventory, SSH trust and config), lab (up/down/status), cli, control (the
lab from the control node for the tests and the benchmark: the CLI, reads, Ansible runs of
the modules).
"""
