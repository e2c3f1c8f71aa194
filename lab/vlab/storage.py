"""The storage host: a GlusterFS volume (shared guest images) and a tgt iSCSI target."""
from . import config
from .proc import LabError

BRICK = config.GLUSTER_BRICK


def gluster(host, *args, check=True, timeout=60):
    return host.run(["gluster", "--mode=script"] + list(args), step="gluster " + args[0],
                    check=check, timeout=timeout)


def ensure_glusterd(host):
    changed = host.start_daemon(
        "glusterd", ["glusterd", "-N", "--log-level=WARNING"],
        lambda: gluster(host, "volume", "list", check=False, timeout=10).returncode == 0, timeout=60)
    info = gluster(host, "volume", "info", config.GLUSTER_VOLUME, check=False)
    if info.returncode != 0:
        # One brick on the host's root filesystem: GlusterFS wants `force` for that.
        gluster(host, "volume", "create", config.GLUSTER_VOLUME,
                "%s:%s" % (config.STORAGE_HOST, BRICK), "force")
        # QEMU opens images with O_DIRECT (cache=none) and libvirt checks the file system type;
        # these settings are the ones GlusterFS recommends for VM images on FUSE.
        for key, value in (("network.remote-dio", "disable"), ("performance.strict-o-direct", "on"),
                           ("storage.owner-uid", "0"), ("storage.owner-gid", "0")):
            gluster(host, "volume", "set", config.GLUSTER_VOLUME, key, value)
        changed = True
        info = gluster(host, "volume", "info", config.GLUSTER_VOLUME)
    if "Status: Started" not in info.stdout:
        gluster(host, "volume", "start", config.GLUSTER_VOLUME, "force")
        changed = True
    return changed


def volume_healthy(host):
    res = gluster(host, "volume", "status", config.GLUSTER_VOLUME, check=False, timeout=15)
    return res.returncode == 0 and " Y " in res.stdout


def tgtadm(host, *args, check=True):
    return host.run(["tgtadm", "--lld", "iscsi"] + list(args), step="tgtadm", check=check)


def ensure_iscsi(host):
    changed = host.start_daemon(
        "tgtd", ["tgtd", "-f"],
        lambda: tgtadm(host, "--op", "show", "--mode", "target", check=False).returncode == 0)
    shown = tgtadm(host, "--op", "show", "--mode", "target").stdout
    if config.ISCSI_IQN in shown:
        return changed
    tgtadm(host, "--op", "new", "--mode", "target", "--tid", "1", "-T", config.ISCSI_IQN)
    for lun in range(1, config.ISCSI_LUNS + 1):
        image = "/srv/iscsi/lun%d.img" % lun
        host.run(["truncate", "-s", "%dM" % config.ISCSI_LUN_MIB, image], step="create LUN backing file")
        tgtadm(host, "--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun), "-b", image)
    tgtadm(host, "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
    return True


def iscsi_healthy(host):
    res = tgtadm(host, "--op", "show", "--mode", "target", check=False)
    return res.returncode == 0 and ("LUN: %d" % config.ISCSI_LUNS) in res.stdout


def mount_shared(hv):
    """Mount the GlusterFS volume at SHARED_DIR inside a hypervisor; repair a stale mount."""
    fstype = hv.mounts().get(config.SHARED_DIR)
    if fstype == "fuse.glusterfs" and shared_mount_healthy(hv):
        return False
    if fstype:
        # Stale ("Transport endpoint is not connected") or wrong: lazily detach it first.
        hv.run(["umount", "-l", config.SHARED_DIR], step="unmount stale shared storage", check=False)
    res = hv.run(["mount", "-t", "glusterfs", "-o", "log-level=WARNING",
                  "%s:/%s" % (config.STORAGE_HOST, config.GLUSTER_VOLUME), config.SHARED_DIR],
                 step="mount shared storage", check=False, timeout=60)
    if res.returncode != 0 or not shared_mount_healthy(hv):
        raise LabError(hv.name, "mount shared storage", (res.stderr or res.stdout).strip() or "mount is not usable")
    return True


def shared_mount_healthy(hv):
    res = hv.run(["timeout", "5", "stat", "-f", "-c", "%T", config.SHARED_DIR],
                 step="check shared storage", check=False)
    return res.returncode == 0 and "fuse" in res.stdout
