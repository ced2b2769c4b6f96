"""A real OpenID Connect provider for tests: panva's ``oidc-provider`` under node, on 127.0.0.1.

``OidcProvider().start()`` runs ``node tests/oidc/provider.mjs`` on a free port with an RSA
signing key made here (so token tests can sign look-alike tokens with the provider's own key).
``register_client(redirect_uri)`` adds a confidential client (returns id and secret);
``set_user(login, **claims)`` adds or changes a user, read by the provider at every sign-in.
The provider's built-in sign-in page accepts any password for a known login.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
TENANT = "8f6c2a1e-1b2c-4d5e-9f00-0a1b2c3d4e5f"


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def entra_claims(login, *, tenant=TENANT, groups=(), roles=(), email=None, name=None, **extra):
    """Claims shaped like an Entra ID token for ``login`` (``alice`` → alice@contoso.com)."""
    email = email or f"{login}@contoso.com"
    claims = {
        "tid": tenant,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{tenant}/{login}")),
        "preferred_username": email,
        "email": email,
        "name": name or login.title(),
        "groups": list(groups),
        "roles": list(roles),
    }
    claims.update(extra)
    return claims


class OidcProvider:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="lapis-oidc-"))
        self.port = None
        self.issuer = None
        self.process = None
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "lapis-test-" + uuid.uuid4().hex[:8]
        self._users = {}
        self._clients = {}
        self._write("users.json", self._users)
        self._write("clients.json", self._clients)

    def _write(self, name, data):
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)  # the provider never reads a half-written file
        return path

    def _private_jwk(self):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def start(self, timeout=30):
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node is not installed: the OIDC tests need it (apt-get install nodejs)")
        if not (HERE / "node_modules" / "oidc-provider").exists():
            raise RuntimeError("oidc-provider is not installed: run `make test` (npm ci in tests/oidc)")
        for _attempt in range(3):
            self.port = _free_port()
            self.issuer = f"http://127.0.0.1:{self.port}"
            config = self._write("config.json", {
                "port": self.port,
                "issuer": self.issuer,
                "jwks": {"keys": [self._private_jwk()]},
                "usersFile": str(self.dir / "users.json"),
                "clientsFile": str(self.dir / "clients.json"),
            })
            self._log = open(self.dir / "provider.log", "w")  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                [node, str(HERE / "provider.mjs"), str(config)], cwd=HERE,
                stdout=self._log, stderr=subprocess.STDOUT,
            )
            if self._wait(timeout):
                return self
            self.process.kill()
            self.process.wait()
            self._log.close()
        raise RuntimeError("the OIDC provider did not start:\n" + self.log())

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration", timeout=2)
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def log(self):
        try:
            return (self.dir / "provider.log").read_text()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def register_client(self, redirect_uri):
        """A confidential web client for ``redirect_uri``; returns ``(client_id, client_secret)``."""
        client_id = "lapis-" + uuid.uuid4().hex[:10]
        secret = uuid.uuid4().hex + uuid.uuid4().hex
        self._clients[client_id] = {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }
        self._write("clients.json", self._clients)
        return client_id, secret

    def set_redirect(self, client_id, redirect_uri):
        self._clients[client_id]["redirect_uris"] = [redirect_uri]
        self._write("clients.json", self._clients)

    def set_user(self, login, claims):
        """Add or replace a user; ``claims`` (see ``entra_claims``) go into their ID token."""
        self._users[login] = {"claims": claims}
        self._write("users.json", self._users)

    def sign(self, claims, *, key=None, kid=None):
        """An RS256 token signed with the provider's key (or ``key``), for token tests."""
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})
