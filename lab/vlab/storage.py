"""The storage host's GlusterFS volume (shared guest images) and tgt iSCSI target, and the
volume's mount on each hypervisor. glusterd, tgt and the mount are systemd units of their
machines; the lab creates the volume once and checks that each unit does its job."""
from . import config
from .proc import LabError, wait_for
from .services import ensure_active

BRICK = config.GLUSTER_BRICK
SHARED_MOUNT_UNIT = "var-lib-libvirt-images.mount"   # systemd's name for the fstab entry at SHARED_DIR


def gluster(host, *args, check=True, timeout=60):
    return host.run(["gluster", "--mode=script"] + list(args), step="gluster " + args[0],
                    check=check, timeout=timeout)


def ensure_glusterd(host):
    changed = ensure_active(host, "glusterd.service")
    wait_for(lambda: gluster(host, "volume", "list", check=False, timeout=10).returncode == 0,
             60, "glusterd answers", host.name)
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
    wait_for(lambda: volume_healthy(host), 30, "glusterfs brick online", host.name)
    return changed


def volume_healthy(host):
    res = gluster(host, "volume", "status", config.GLUSTER_VOLUME, check=False, timeout=15)
    return res.returncode == 0 and " Y " in res.stdout


def tgtadm(host, *args, check=True):
    return host.run(["tgtadm", "--lld", "iscsi"] + list(args), step="tgtadm", check=check)


def ensure_iscsi(host):
    """tgt.service running with the target of /etc/tgt/conf.d/virtlab.conf (provision.py)."""
    changed = ensure_active(host, "tgt.service")
    if not iscsi_healthy(host):
        host.systemctl("reload", "tgt.service")
        changed = True
        if not iscsi_healthy(host):
            raise LabError(host.name, "iscsi target", "tgt.service runs but does not export %s with %d LUNs "
                           "(see /etc/tgt/conf.d/virtlab.conf in the host)" % (config.ISCSI_IQN, config.ISCSI_LUNS))
    return changed


def iscsi_healthy(host):
    res = tgtadm(host, "--op", "show", "--mode", "target", check=False)
    return res.returncode == 0 and config.ISCSI_IQN in res.stdout and ("LUN: %d" % config.ISCSI_LUNS) in res.stdout


def mount_shared(hv):
    """The GlusterFS volume mounted at SHARED_DIR by its fstab unit; a stale mount (its
    client gave up: "Transport endpoint is not connected") is detached and mounted again."""
    if shared_mount_healthy(hv):
        return False
    if hv.run(["mountpoint", "-q", config.SHARED_DIR], check=False).returncode == 0:
        hv.run(["umount", "-l", config.SHARED_DIR], step="unmount stale shared storage", check=False)
    hv.systemctl("reset-failed", SHARED_MOUNT_UNIT, check=False)
    res = hv.systemctl("start", SHARED_MOUNT_UNIT, check=False, timeout=90)
    if res.returncode != 0 or not shared_mount_healthy(hv):
        detail = hv.systemctl("status", "--no-pager", "--lines=3", SHARED_MOUNT_UNIT, check=False).stdout
        raise LabError(hv.name, "mount shared storage", "%s does not mount: %s" % (
            SHARED_MOUNT_UNIT, " | ".join(detail.strip().splitlines()[-3:]) or res.stderr.strip()))
    return True


def shared_mount_healthy(hv):
    res = hv.run(["timeout", "5", "stat", "-f", "-c", "%T", config.SHARED_DIR],
                 step="check shared storage", check=False)
    return res.returncode == 0 and "fuse" in res.stdout
