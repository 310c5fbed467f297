"""A certificate authority and a broker certificate for a local broker that speaks TLS, made
with the JDK's keytool (beside the java that runs the broker): nothing else to install.

The broker gets a PKCS12 keystore (its key, its certificate signed by the authority) and
trusts the authority's PEM for its own connections to itself; clients verify the broker
against that PEM (`ca_file`), host name included (the certificate names the broker's host).
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BrokerStartError


@dataclass(frozen=True)
class BrokerTls:
    """Where a broker's TLS files are."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        """The authority's certificate (PEM): what clients trust."""
        return self.directory / "ca.crt"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    @property
    def password_file(self) -> Path:
        return self.directory / "keystore.password"

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.ca_file, self.keystore, self.password_file))

    def server_config(self, listener: str) -> dict[str, str]:
        """The broker's settings for `listener` (lower case: Kafka's listener prefix)."""
        password = self.password_file.read_text().strip()
        prefix = f"listener.name.{listener}."
        return {
            f"{prefix}ssl.keystore.type": "PKCS12",
            f"{prefix}ssl.keystore.location": str(self.keystore),
            f"{prefix}ssl.keystore.password": password,
            f"{prefix}ssl.key.password": password,
            f"{prefix}ssl.truststore.type": "PEM",
            f"{prefix}ssl.truststore.location": str(self.ca_file),
        }

    def make(self, java: str, host: str) -> None:
        """Make the authority and the broker's certificate for `host` (once: kept in
        `directory` for the broker's next start)."""
        if self.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        keytool = str(Path(java).with_name("keytool"))
        store = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
        ca_store = [*store, "-keystore", str(self.directory / "ca.p12")]
        broker_store = [*store, "-keystore", str(self.keystore)]
        name = f"IP:{host}" if _is_address(host) else f"DNS:{host}"
        request, signed = self.directory / "broker.csr", self.directory / "broker.crt"
        key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3650"]
        for args in (
            ["-genkeypair", "-alias", "ca", "-dname", "CN=ytmaker dev CA", "-ext", "bc:c", *key],
            ["-exportcert", "-alias", "ca", "-rfc", "-file", str(self.ca_file)],
        ):
            _keytool(keytool, *args, *ca_store)
        _keytool(
            keytool, "-genkeypair", "-alias", "broker", "-dname", f"CN={host}", *key, *broker_store
        )
        _keytool(keytool, "-certreq", "-alias", "broker", "-file", str(request), *broker_store)
        _keytool(
            keytool,
            "-gencert",
            "-alias",
            "ca",
            "-infile",
            str(request),
            "-outfile",
            str(signed),
            "-rfc",
            "-validity",
            "3650",
            "-ext",
            f"SAN={name},DNS:localhost",
            *ca_store,
        )
        _keytool(
            keytool,
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            str(self.ca_file),
            *broker_store,
        )
        _keytool(keytool, "-importcert", "-alias", "broker", "-file", str(signed), *broker_store)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _keytool(keytool: str, *args: str) -> None:
    done = subprocess.run(
        [keytool, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BrokerStartError(f"keytool {args[0]} failed: {done.stdout}{done.stderr}")
