#!/usr/bin/env python3
"""Throwaway certificate authorities for testing against the DM emulator.

The module verifies the service's certificate, so tests need a CA the module can
be told to trust (PegaDMCAFile) and a server certificate for 127.0.0.1/localhost
signed by it. A second, unrelated CA lets tests check that a certificate the
module does not trust is refused.

Everything is made with the `openssl` command line (no Python packages), uses
EC P-256 keys (fast to generate) and is valid for two days only.

Usage as a script:
    throwaway_ca.py DIR              # ca.pem ca.key server.pem server.key
    throwaway_ca.py --untrusted DIR  # other-ca.pem ... other-server.pem/key
"""

import argparse
import os
import secrets
import subprocess

VALIDITY_DAYS = "2"
SERVER_SAN = "DNS:localhost,IP:127.0.0.1"

CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args):
    """Run openssl and fail loudly with its stderr: a silent half-made CA
    would surface much later as a confusing TLS error."""
    proc = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(
            "openssl %s failed (%d): %s" % (args[0], proc.returncode, proc.stderr)
        )


def _ec_key_args():
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _random_serial():
    return "0x" + secrets.token_hex(16)


def _publish(path):
    """Certificates are public; httpd children (not root) must read them."""
    os.chmod(path, 0o644)


def _make_authority(directory, prefix, common_name):
    cert = os.path.join(directory, prefix + "ca.pem")
    key = os.path.join(directory, prefix + "ca.key")
    _openssl(
        "req", "-x509", *_ec_key_args(),
        "-days", VALIDITY_DAYS,
        "-subj", "/CN=" + common_name,
        "-set_serial", _random_serial(),
        "-config", _req_config(directory, prefix + "ca", CA_EXTENSIONS),
        "-extensions", "ext",
        "-keyout", key, "-out", cert,
    )
    os.chmod(key, 0o600)
    _publish(cert)
    return cert, key


def _req_config(directory, tag, extensions):
    """openssl req wants a config file; ours holds only an [ext] section,
    so nothing from the system's openssl.cnf leaks into the certificates."""
    path = os.path.join(directory, "openssl-%s.cnf" % tag)
    with open(path, "w") as fh:
        fh.write("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n" + extensions)
    return path


def _make_server(directory, prefix, ca_cert, ca_key, san, days=VALIDITY_DAYS):
    cert = os.path.join(directory, prefix + "server.pem")
    key = os.path.join(directory, prefix + "server.key")
    csr = os.path.join(directory, prefix + "server.csr")
    ext = os.path.join(directory, prefix + "server-ext.cnf")
    with open(ext, "w") as fh:
        fh.write(SERVER_EXTENSIONS.format(san=san))
    _openssl(
        "req", "-new", *_ec_key_args(),
        "-subj", "/CN=localhost",
        "-config", _req_config(directory, prefix + "server-req", ""),
        "-keyout", key, "-out", csr,
    )
    _openssl(
        "x509", "-req", "-in", csr,
        "-CA", ca_cert, "-CAkey", ca_key,
        "-set_serial", _random_serial(),
        "-days", str(days),
        "-extfile", ext,
        "-out", cert,
    )
    os.unlink(csr)
    os.chmod(key, 0o600)
    _publish(cert)
    return cert, key


def make_ca(directory, prefix="", san=SERVER_SAN, server_days=VALIDITY_DAYS):
    """Create a CA and a server certificate for localhost/127.0.0.1 in
    `directory`; the server certificate is valid for `server_days` days
    (1: it expires tomorrow).

    Files: {prefix}ca.pem, {prefix}ca.key, {prefix}server.pem,
    {prefix}server.key. Returns a dict of those paths (keys: ca, ca_key,
    cert, key).
    """
    os.makedirs(directory, exist_ok=True)
    label = (prefix or "pegadm-test-") + "throwaway-ca"
    ca_cert, ca_key = _make_authority(directory, prefix, label)
    cert, key = _make_server(directory, prefix, ca_cert, ca_key, san, server_days)
    return {"ca": ca_cert, "ca_key": ca_key, "cert": cert, "key": key}


def make_untrusted(directory):
    """A second CA, unrelated to make_ca()'s, with its own localhost server
    certificate: serve it to check that the module refuses a certificate
    its PegaDMCAFile does not vouch for."""
    return make_ca(directory, prefix="other-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument(
        "--untrusted", action="store_true",
        help="make the unrelated 'other-' CA and server certificate instead",
    )
    args = parser.parse_args()
    made = make_untrusted(args.directory) if args.untrusted else make_ca(args.directory)
    for name, path in sorted(made.items()):
        print("%s %s" % (name, path))


if __name__ == "__main__":
    main()
