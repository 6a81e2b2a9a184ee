"""A stand-in OpenID Connect issuer for the tests: discovery, JWKS, the device authorization grant,
the token endpoint (device code and refresh token grants), key rotation, and a `mint` for the tokens
a test wants (good ones and every kind of bad one). It counts what it is asked, so tests can check
how often the gateway fetched the keys. Loopback only; nothing here is a real IdP."""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class StubIssuer:
    def __init__(self, audience: str = "sluice", client_id: str = "sluice-cli", token_lifetime: int = 600) -> None:
        self.audience = audience
        self.client_id = client_id
        self.token_lifetime = token_lifetime
        self.key = new_key()
        self.kid = "key-1"
        self.jwks_fetches = 0
        self.grants: list[str] = []  # grant types the token endpoint served
        self.devices: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.lock = threading.Lock()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self.reply(200, {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                                     "device_authorization_endpoint": issuer.url + "/device",
                                     "token_endpoint": issuer.url + "/token"})
                elif self.path == "/jwks":
                    with issuer.lock:
                        issuer.jwks_fetches += 1
                        numbers = issuer.key.public_key().public_numbers()
                        kid = issuer.kid
                    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
                    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
                    # An HMAC key published beside the signing key, as some IdPs do: it must be ignored.
                    self.reply(200, {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(n), "e": b64url(e)},
                                              {"kty": "oct", "kid": "shared", "k": b64url(b"not-for-verification")}]})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path == "/device":
                    if form.get("client_id") != issuer.client_id:
                        return self.reply(400, {"error": "invalid_client"})
                    device_code, user_code = secrets.token_urlsafe(16), "ABCD-" + secrets.token_hex(2).upper()
                    with issuer.lock:
                        issuer.devices[device_code] = {"polls": 0, "scope": form.get("scope", "")}
                    self.reply(200, {"device_code": device_code, "user_code": user_code, "interval": 1, "expires_in": 60,
                                     "verification_uri": issuer.url + "/activate",
                                     "verification_uri_complete": issuer.url + "/activate?user_code=" + user_code})
                elif self.path == "/token":
                    grant = form.get("grant_type", "")
                    with issuer.lock:
                        issuer.grants.append(grant)
                    if form.get("client_id") != issuer.client_id:
                        return self.reply(400, {"error": "invalid_client"})
                    if grant == "urn:ietf:params:oauth:grant-type:device_code":
                        with issuer.lock:
                            device = issuer.devices.get(form.get("device_code", ""))
                            if device is None:
                                return self.reply(400, {"error": "invalid_grant"})
                            device["polls"] += 1
                            # The person confirms the code after the CLI's first poll.
                            if device["polls"] < 2:
                                return self.reply(400, {"error": "authorization_pending"})
                            del issuer.devices[form["device_code"]]
                        self.reply(200, issuer.tokens({"email": "dev@corp.example", "groups": ["engineering"]}))
                    elif grant == "refresh_token":
                        with issuer.lock:
                            claims = issuer.refresh_tokens.pop(form.get("refresh_token", ""), None)
                        if claims is None:
                            return self.reply(400, {"error": "invalid_grant"})
                        self.reply(200, issuer.tokens(claims))
                    else:
                        self.reply(400, {"error": "unsupported_grant_type"})
                else:
                    self.reply(404, {"error": "not_found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def rotate(self) -> None:
        """A new signing key under a new kid; the JWKS then publishes only the new one."""
        with self.lock:
            self.key = new_key()
            self.kid = f"key-{int(self.kid.split('-')[1]) + 1}"

    def tokens(self, claims: dict) -> dict:
        refresh = secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[refresh] = claims
        access = self.mint(**claims, expires_in=self.token_lifetime)
        return {"access_token": access, "id_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": self.token_lifetime}

    def mint(self, expires_in: int = 600, alg: str = "RS256", kid: str | None = None, key=None, issuer: str | None = None,
             audience: str | None = None, **claims) -> str:
        """A token as this issuer would sign it, with whatever a test overrides."""
        now = int(time.time())
        body = {"iss": issuer or self.url, "aud": audience or self.audience, "sub": "user-1", "iat": now,
                "exp": now + expires_in, **claims}
        with self.lock:
            signing_key, signing_kid = key or self.key, kid or self.kid
        header = {"alg": alg, "typ": "JWT", "kid": signing_kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(body).encode())).encode()
        if alg == "RS256":
            signature = signing_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "HS256":
            # The classic forgery: the issuer's public key (PEM) used as an HMAC secret.
            secret = self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            mac = hmac.HMAC(secret, hashes.SHA256())
            mac.update(signing_input)
            signature = mac.finalize()
        elif alg == "none":
            signature = b""
        else:
            raise ValueError(alg)
        return signing_input.decode() + "." + b64url(signature)
