"""Issue 8: nothing secret in returned results or logs.

The roles that take secrets run on host-c in check mode with --diff and -vvv (every result and
diff printed), and the output must not contain them: libvirt_host with a provided TLS private key,
shared_storage with an iSCSI CHAP password. Check mode only: these tests change nothing on the
lab, so they do not use the `labh` fixture (its `virtlab up` repairs hosts); `make integration`
brings the lab up first.
"""
import json
import os
import secrets
import subprocess

from support.lab import run_playbook, virtlab

HOST = "host-c"


def check_playbook(path, tmp_path, monkeypatch):
    """ansible-playbook --check --diff -vvv; returns (CompletedProcess, stdout + stderr + Ansible's log)."""
    log = tmp_path / "ansible.log"
    monkeypatch.setenv("ANSIBLE_LOG_PATH", str(log))  # run_playbook passes our environment on
    res = run_playbook(str(path), "--diff", "-vvv", check_mode=True, timeout=600)[0]
    return res, res.stdout + res.stderr + (log.read_text() if log.exists() else "")


def write_playbook(tmp_path, play):
    # JSON is YAML, and keeps each PEM line whole on one line of the file (the sanity checks
    # below look for them there).
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([dict({"hosts": HOST, "gather_facts": False}, **play)], indent=2))
    return path


def task_output(output, task):
    """The part of the output from a task's banner to the next banner."""
    start = output.index("TASK [%s]" % task)
    end = output.find("\nTASK [", start + 1)
    return output[start:end if end >= 0 else len(output)]


def assert_absent(secret_strings, output):
    leaked = [s for s in secret_strings if s in output]
    lines = [line for line in output.splitlines() if any(s in line for s in leaked)]
    assert leaked == [], "secret in the output:\n" + "\n".join(lines[:5])


def make_pki(directory):
    """A throwaway CA and a host key and certificate (serverAuth + clientAuth) it signs, with openssl.
    Returns the PEM texts {ca_cert, cert, key}."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=str(directory), capture_output=True, check=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=kvmops no-secrets test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "host.key", "-out", "host.csr", "-subj", "/CN=" + HOST)
    (directory / "host.ext").write_text("extendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = DNS:%s\n" % HOST)
    openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1",
            "-days", "2", "-extfile", "host.ext", "-out", "host.pem")
    return {name: (directory / fname).read_text()
            for name, fname in (("ca_cert", "ca.pem"), ("cert", "host.pem"), ("key", "host.key"))}


def key_chunks(pem):
    """40 characters of every full base64 line of a PEM key body. Line by line, because output
    shows a multi-line value with its newlines escaped (JSON, diffs); without the first line,
    whose start is the ASN.1 header every RSA key shares."""
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [line[:40] for line in body[1:-1]]


def test_libvirt_host_provided_tls_key_not_in_output(tmp_path, monkeypatch, request):
    pki = make_pki(tmp_path)
    chunks = key_chunks(pki["key"])
    assert len(chunks) >= 20 and len(set(chunks)) == len(chunks)  # a 2048-bit key: ~25 distinct lines

    # In check mode the role skips the key copy when the key's directory does not exist yet:
    # directories made inside host-c with the modes the role wants let the copy run in check mode
    # and show its diff, the place a key would leak.
    pki_dir = "/tmp/kvmops-no-secrets-test/pki"
    dirs = {"ca": "0755", "libvirt": "0755", "libvirt/private": "0750", "qemu": "0750"}
    for sub, mode in dirs.items():
        virtlab("exec", HOST, "--", "install", "-d", "-m", mode, "%s/%s" % (pki_dir, sub))
    request.addfinalizer(lambda: virtlab("exec", HOST, "--", "rm", "-rf", os.path.dirname(pki_dir), check=False))
    play = write_playbook(tmp_path, {"roles": [{"role": "kvmops.migration.libvirt_host", "vars": {
        "libvirt_host_listen_mode": "tls",  # a TLS listener: the key goes to libvirtd, the client and QEMU
        "libvirt_host_tls_pki_source": "provided",
        "libvirt_host_tls_ca_cert": pki["ca_cert"],
        "libvirt_host_tls_cert": pki["cert"],
        "libvirt_host_tls_key": pki["key"],
        "libvirt_host_pki_ca_cert": pki_dir + "/ca/cacert.pem",
        "libvirt_host_pki_server_cert": pki_dir + "/libvirt/servercert.pem",
        "libvirt_host_pki_server_key": pki_dir + "/libvirt/private/serverkey.pem",
        "libvirt_host_pki_client_cert": pki_dir + "/libvirt/clientcert.pem",
        "libvirt_host_pki_client_key": pki_dir + "/libvirt/private/clientkey.pem",
        "libvirt_host_qemu_tls_dir": pki_dir + "/qemu",
        "libvirt_host_qemu_group": "root",  # the directories above are root's
        # Only the PKI is under test here: no package changes to plan.
        "libvirt_host_manage_packages": False,
    }}]})
    text = play.read_text()
    assert all(chunk in text for chunk in chunks)  # the chunks are really what the play gets

    res, output = check_playbook(play, tmp_path, monkeypatch)
    assert res.returncode == 0, output[-3000:]
    key_task = task_output(output, "kvmops.migration.libvirt_host : Install the provided host key")
    assert "changed: [%s]" % HOST in key_task, key_task  # the key copy ran (the file is new)
    # Positive control: the certificate's diff shows its PEM body, found by the same search.
    assert key_chunks(pki["cert"])[0] in output
    assert_absent(chunks, output)


def test_shared_storage_chap_password_not_in_output(tmp_path, monkeypatch):
    sentinel = "chapSentinel" + secrets.token_hex(10)  # unique: no match from another run's logs
    # The smallest set of variables that reaches the CHAP login task; packages are off because
    # the lab's hosts share one dpkg database (as in molecule/default). host-c has no kernel iSCSI
    # initiator (no iscsiadm), so the login task runs with the password and fails; the rescue
    # accepts that failure and no other, so the play succeeds only if that task was reached.
    play = write_playbook(tmp_path, {"tasks": [{
        "block": [{"ansible.builtin.include_role": {"name": "kvmops.migration.shared_storage"}, "vars": {
            "shared_storage_manage_packages": False,
            "shared_storage_iscsi_sessions": [{
                "portal": "{{ virtlab_iscsi_portal }}", "target": "{{ virtlab_iscsi_target }}",
                "node_user": "kvmops-test", "node_pass": sentinel}],
        }}],
        "rescue": [{"ansible.builtin.assert": {
            "that": ["ansible_failed_task.name == 'Discover the iSCSI targets and log in'"], "quiet": True}}],
    }]})
    assert sentinel in play.read_text()

    res, output = check_playbook(play, tmp_path, monkeypatch)
    assert res.returncode == 0, output[-3000:]
    assert "TASK [kvmops.migration.shared_storage : Discover the iSCSI targets and log in]" in output
    assert_absent([sentinel], output)
