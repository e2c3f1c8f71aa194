"""Command line of lab/virtlab. Every failure is one line naming the host and the step."""
import argparse
import json
import os
import sys
import time

from . import config, daemons, faults, guests, images, layout, upgrade_repo
from .lab import Lab, prepare, prepare_lock
from .proc import LabError


def parser():
    p = argparse.ArgumentParser(prog="lab/virtlab", description=(
        "Real libvirt hypervisors as Debian machines (systemd-nspawn) on one machine (see docs/lab.md)."))
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the lab, or repair what is missing (idempotent)")
    up.add_argument("--hypervisors", type=int, help="number of hypervisors (default %d, or as now)"
                    % layout.DEFAULT_HYPERVISORS)
    up.add_argument("--release", action="append", default=[], metavar="HOST=RELEASE",
                    help="the Debian release a host runs (%s; repeatable; default: %s)" % (
                        ", ".join(sorted(images.RELEASES)),
                        ", ".join("%s=%s" % kv for kv in sorted(layout.DEFAULT_RELEASES.items()))))
    up.add_argument("--daemons", action="append", default=[], metavar="HOST=LAYOUT",
                    help="libvirt's daemons on a hypervisor: monolithic (libvirtd) or modular (virtqemud and "
                         "virtproxyd, built from Debian's source package; repeatable; default: %s)" % (
                             ", ".join("%s=%s" % kv for kv in sorted(layout.DEFAULT_DAEMONS.items()))))
    up.add_argument("--config", metavar="FILE", help="settings from a TOML file (docs/lab.md)")
    up.add_argument("--firewall", action=argparse.BooleanOptionalAction, default=None,
                    help="run dbus + firewalld on every hypervisor")
    up.add_argument("--tcp", action=argparse.BooleanOptionalAction, default=None,
                    help="libvirtd also listens on TCP 16509 (SSH is the default transport)")
    sub.add_parser("down", help="remove everything the lab made (the cached host images stay)")
    im = sub.add_parser("images", help="the cached host images: release, versions, size")
    im.add_argument("--build", action="store_true",
                    help="first build what `up` would need and does not find (packages, host images, guest "
                         "kernel) and the bookworm upgrade repository; `make test` runs this in the background")
    sub.add_parser("reset", help="make hosts again from their image (their own layer and guests are lost)"
                   ).add_argument("hosts", nargs="+")
    sub.add_parser("upgrade-repo", help="the flat apt repository of RELEASE-backports' libvirt and QEMU "
                   "(built once, cached); prints its directory").add_argument("release", nargs="?", default="bookworm")
    sub.add_parser("reboot", help="reboot a host (systemctl reboot inside) and wait until it is back").add_argument("host")
    st = sub.add_parser("status", help="health of every host; exit 1 if anything is unhealthy")
    st.add_argument("--json", action="store_true")
    ex = sub.add_parser("exec", help="run a command inside a host: exec HOST -- CMD...")
    ex.add_argument("host")
    ex.add_argument("command", nargs=argparse.REMAINDER)

    g = sub.add_parser("guest", help="heartbeat guests").add_subparsers(dest="gcmd", required=True)
    gc = g.add_parser("create", help="define and start a guest")
    gc.add_argument("name")
    gc.add_argument("--on", required=True, metavar="HOST")
    gc.add_argument("--memory", type=int, default=128, metavar="MiB")
    gc.add_argument("--dirty", metavar="MiB[,MiBps[,after_s,MiBps]]",
                    help="run the memory dirtier in the guest (a second rate: the load changes after after_s)")
    gc.add_argument("--fill", type=int, default=0, metavar="MiB",
                    help="write this much guest memory once and keep it (a used, idle guest); before the first "
                         "heartbeat")
    gc.add_argument("--storage", choices=("shared", "local"), default="shared")
    gc.add_argument("--cpu-model", metavar="MODEL")
    gc.add_argument("--network", action="append", default=[], metavar="NET",
                    help="attach a NIC to this libvirt network (repeatable)")
    gc.add_argument("--disk-mib", type=int, default=64)
    gc.add_argument("--disk-fill", type=int, default=0, metavar="MiB",
                    help="write this much data into the new disk image before the guest starts")
    gc.add_argument("--no-wait", action="store_true", help="do not wait for the first heartbeat")
    for name, text in (("rm", "destroy and undefine everywhere, remove its files"),
                       ("where", "hosts where the guest is running/defined"),
                       ("heartbeat", "the guest's last heartbeat and the host it came from")):
        c = g.add_parser(name, help=text)
        c.add_argument("name")
        if name != "rm":
            c.add_argument("--json", action="store_true")

    f = sub.add_parser("fault", help="inject faults").add_subparsers(dest="fcmd", required=True)
    for name in ("link-down", "link-up", "clear", "stop-libvirtd", "start-libvirtd", "disk-free"):
        f.add_parser(name).add_argument("host")
    f.add_parser("power-off", help="a power loss: every process of the machine killed, link down").add_argument("host")
    f.add_parser("power-on", help="link up, the machine boots; no lab guest is started").add_argument("host")
    k = f.add_parser("kill-qemu", help="SIGKILL one guest's QEMU on a host (a crash of that process only)")
    k.add_argument("host")
    k.add_argument("guest")
    f.add_parser("storage-down", help="stop the shared storage's brick (every hypervisor's images go away)")
    f.add_parser("storage-up", help="start the shared storage's brick again; the mounts reconnect")
    d = f.add_parser("disk-full", help="a small tmpfs over a hypervisor's local image directory")
    d.add_argument("host")
    d.add_argument("--size", type=int, default=8, metavar="MiB")
    f.add_parser("stream-reset", help="TCP resets on the migration ports of a hypervisor until clear").add_argument("host")
    f.add_parser("tcp-give-up", help="TCP on the host gives up on a silent peer after 4 retransmissions (seconds) "
                 "instead of 15 (minutes), until clear").add_argument("host")
    n = f.add_parser("netem", help="rate limit and packet loss on a host's link")
    n.add_argument("host")
    n.add_argument("--delay", type=int, default=0, metavar="MS")
    n.add_argument("--loss", type=float, default=0.0, metavar="PCT")
    n.add_argument("--rate", type=float, default=0.0, metavar="MBIT")
    return p


def main(argv):
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("virtlab: must run as root (it creates namespaces, mounts and daemons)", file=sys.stderr)
        return 1
    try:
        return COMMANDS[args.cmd](args)
    except LabError as exc:
        print("virtlab: %s" % exc, file=sys.stderr)
        return 1


def cmd_up(args):
    lab = Lab()
    started = time.monotonic()
    changes = lab.up(hypervisors=args.hypervisors, firewall=args.firewall, tcp=args.tcp,
                     releases=layout.parse_releases(args.release), config_file=args.config,
                     daemons=layout.parse_daemons(args.daemons))
    rows, healthy = lab.status()
    took = time.monotonic() - started
    if changes:
        print("lab up in %.0fs: %d change(s)" % (took, len(changes)))
    else:
        print("lab already up and healthy: nothing changed (%.1fs)" % took)
    if not healthy:
        print_status(rows, lab)
        raise LabError("lab", "up", "built, but unhealthy (see table)")
    return 0


def cmd_down(args):
    Lab().down()
    print("lab down")
    return 0


def print_status(rows, lab):
    """The health table; RELEASE shows the host's image (`trixie-modular`: modular daemons)."""
    comps = []
    for dummy_name, dummy_ip, dummy_release, checks in rows:
        comps += [c for c in checks if c not in comps]
    keys = lab.image_keys()
    print("%-10s %-13s %-15s %s" % ("HOST", "ADDRESS", "RELEASE", " ".join("%-12s" % c for c in comps)))
    for name, ip, release, checks in rows:
        cells = [("ok" if checks[c] else "FAIL") if c in checks else "-" for c in comps]
        print("%-10s %-13s %-15s %s" % (name, ip, keys.get(name, release), " ".join("%-12s" % c for c in cells)))


def cmd_status(args):
    lab = Lab()
    rows, healthy = lab.status()
    if args.json:
        print(json.dumps({"healthy": healthy, "firewall": lab.state.get("firewall"),
                          "hosts": [{"name": n, "address": a, "release": r, "checks": c,
                                     "daemons": (lab.state.get("daemons") or {}).get(n) or layout.default_daemons(n)}
                                    for n, a, r, c in rows]},
                         indent=1))
    else:
        if not lab.state["hypervisors"]:
            print("no lab (run: lab/virtlab up)")
        else:
            print_status(rows, lab)
    return 0 if healthy else 1


def cmd_images(args):
    if args.build:
        started = time.monotonic()
        wanted = set(Lab().image_keys().values())
        wanted |= {images.image_key(layout.default_release(name), layout.default_daemons(name))
                   for name in config.hypervisor_names(layout.DEFAULT_HYPERVISORS)}
        wanted.add(layout.STORAGE_RELEASE)
        dummy_paths, changes = prepare(sorted(wanted))
        with prepare_lock():
            # bookworm's: the rolling upgrade test; trixie's: libvirt 12.9 for the post-copy recovery test
            for release in ("bookworm", "trixie"):
                upgrade_repo.ensure(release, log=print)
        print("lab images ready in %.0fs%s" % (time.monotonic() - started, "" if changes else ": nothing to build"))
    cached = sorted(p for p in images.IMAGES_DIR.glob("*-*") if p.is_dir()) if images.IMAGES_DIR.is_dir() else []
    current = {images.image_path(images.image_key(r, d)) for r in images.RELEASES for d in daemons.LAYOUTS}
    for path in cached:
        record = images.info(path) or {}
        versions = record.get("versions", {})
        print("%-24s %-9s libvirt %-18s qemu %-24s built %s in %ss%s" % (
            path.name, record.get("release", "?"), versions.get("libvirt-daemon", "?"),
            versions.get("qemu-system-x86", "?"), record.get("built", "?"), record.get("build_seconds", "?"),
            "" if path in current else "  (old recipe: unused, may be deleted)"))
    if not cached:
        print("no host images yet (lab/virtlab up builds them)")
    return 0


def cmd_reset(args):
    lab = Lab()
    started = time.monotonic()
    lab.reset(args.hosts)
    print("%s made again in %.0fs" % (", ".join(args.hosts), time.monotonic() - started))
    return 0


def cmd_upgrade_repo(args):
    with prepare_lock():  # `images --build` may be building it right now
        print(upgrade_repo.ensure(args.release, log=lambda text: print(text, file=sys.stderr)))
    return 0


def cmd_reboot(args):
    lab = Lab()
    lab.lock()
    started = time.monotonic()
    faults.reboot(lab, args.host)
    print("%s rebooted in %.1fs" % (args.host, time.monotonic() - started))
    return 0


def cmd_exec(args):
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise LabError(args.host, "exec", "no command given (exec HOST -- CMD...)")
    h = Lab().host(args.host)
    os.execvp("nsenter", h.enter() + cmd)


def cmd_guest(args):
    lab = Lab()
    if args.gcmd == "create":
        lab.lock()
        guests.create(lab, args.name, args.on, args.memory, args.dirty, args.storage, args.cpu_model,
                      args.network, args.disk_mib, args.disk_fill, fill_mib=args.fill, wait=not args.no_wait)
        print("%s running on %s" % (args.name, args.on))
    elif args.gcmd == "rm":
        lab.lock()
        if not guests.remove(lab, args.name):
            raise LabError("lab", "guest rm", "no guest named %s on any hypervisor" % args.name)
        print("%s removed" % args.name)
    elif args.gcmd == "where":
        found = guests.locate(lab, args.name)
        if args.json:
            print(json.dumps([{"host": h, "state": s, "persistent": p} for h, s, p in found]))
        for h, s, p in ([] if args.json else found):
            print("%s %s %s" % (h, s, "persistent" if p else "transient"))
        return 0 if found else 1
    elif args.gcmd == "heartbeat":
        hb = guests.heartbeat(lab, args.name)
        if args.json:
            print(json.dumps(hb))
        elif hb["counter"]:
            print("%s counter=%d host=%s uptime=%.1f boots=%d oops=%s age=%.1fs" % (
                args.name, hb["counter"], hb["host"], hb["uptime"], len(hb["boots"]),
                "YES" if hb["oops"] else "no", hb["age_s"]))
        else:
            print("%s: no heartbeat yet" % args.name)
        return 0 if hb["counter"] else 1
    return 0


def cmd_fault(args):
    lab = Lab()
    lab.lock()
    if args.fcmd in ("link-down", "link-up"):
        faults.link(lab, args.host, up=args.fcmd == "link-up")
    elif args.fcmd == "netem":
        faults.netem(lab, args.host, args.delay, args.loss, args.rate)
    elif args.fcmd == "stream-reset":
        faults.stream_reset(lab, args.host)
    elif args.fcmd == "tcp-give-up":
        faults.tcp_retries(lab, args.host, faults.TCP_RETRIES2_GIVE_UP)
    elif args.fcmd == "clear":
        faults.clear(lab, args.host)
    elif args.fcmd == "disk-full":
        faults.disk_full(lab, args.host, args.size)
    elif args.fcmd == "disk-free":
        faults.disk_free(lab, args.host)
    elif args.fcmd in ("power-off", "power-on"):
        faults.power(lab, args.host, on=args.fcmd == "power-on")
    elif args.fcmd == "kill-qemu":
        faults.kill_qemu(lab, args.host, args.guest)
        print("kill-qemu %s %s" % (args.host, args.guest))
        return 0
    elif args.fcmd in ("storage-down", "storage-up"):
        faults.shared_storage(lab, up=args.fcmd == "storage-up")
        print(args.fcmd)
        return 0
    else:
        faults.libvirtd(lab, args.host, start=args.fcmd == "start-libvirtd")
    print("%s %s" % (args.fcmd, args.host))
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "exec": cmd_exec, "images": cmd_images,
            "reboot": cmd_reboot, "reset": cmd_reset, "upgrade-repo": cmd_upgrade_repo, "guest": cmd_guest,
            "fault": cmd_fault}
