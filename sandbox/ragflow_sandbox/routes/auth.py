"""Bootstrap routes RAGFlow's own test suite needs: users, login, API tokens, ping, models."""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import constants as C
from ..responses import json_result, respond
from ..store import iso_now
from .base import Endpoint, Router


class AuthRoutes(Router):
    """``/users``, ``/auth/login``, ``/system/tokens``, ``/system/ping``, ``/models``..."""

    def routes(self, e: Endpoint) -> list[Route]:
        api = "/api/v1"
        return [
            Route(f"{api}/users", e(self.register, auth=False), methods=["POST"]),
            Route(f"{api}/auth/login", e(self.login, auth=False), methods=["POST"]),
            Route(f"{api}/system/tokens", e(self.new_token), methods=["POST"]),
            Route(f"{api}/system/tokens", e(self.list_tokens), methods=["GET"]),
            Route(f"{api}/system/ping", e(self.ping, auth=False), methods=["GET"]),
            Route(f"{api}/system/healthz", e(self.ping, auth=False), methods=["GET"]),
            Route(f"{api}/models", e(self.list_models), methods=["GET"]),
            Route(f"{api}/models/default", e(self.accept), methods=["PATCH"]),
            Route(f"{api}/providers", e(self.accept), methods=["PUT"]),
            Route(f"{api}/providers/{{name}}/instances", e(self.accept), methods=["POST"]),
        ]

    async def register(self, request: Request) -> Response:
        req = await self._loose_json(request)
        email, nickname, password = req.get("email"), req.get("nickname"), req.get("password")
        if (
            not email
            or not isinstance(email, str)
            or not re.match(r"^[\w\._-]+@([\w_-]+\.)+[\w-]{2,}$", email)
        ):
            return json_result(code=C.OPERATING_ERROR, message=f"Invalid email address: {email}!")
        if not self.store.add_user(
            email, str(nickname or email.split("@")[0]), str(password or "")
        ):
            return json_result(
                code=C.OPERATING_ERROR, message=f"Email: {email} has already registered!"
            )
        return json_result(
            {"id": self.store.tenant_id, "email": email, "nickname": nickname},
            message=f"{nickname}, welcome aboard!",
        )

    async def login(self, request: Request) -> Response:
        req = await self._loose_json(request)
        user = self.store.get_user(str(req.get("email") or ""))
        if user is None:
            return json_result(
                code=C.AUTHENTICATION_ERROR, message=f"Email: {req.get('email')} is not registered!"
            )
        if str(req.get("password") or "") != user["password"]:
            return json_result(
                code=C.AUTHENTICATION_ERROR, message="Email and password do not match!"
            )
        token = "sandbox-jwt-" + secrets.token_hex(24)
        self.store.add_token(token, kind="jwt")
        data = {
            "id": user["id"],
            "email": user["email"],
            "nickname": user["nickname"],
            "access_token": token,
        }
        return respond(
            {"code": 0, "message": "Welcome back!", "data": data}, headers={"Authorization": token}
        )

    async def new_token(self, request: Request) -> Response:
        token = "ragflow-" + secrets.token_urlsafe(32)
        self.store.add_token(token)
        row = self.store.token_row(token) or {}
        return json_result(
            {
                "tenant_id": self.store.tenant_id,
                "token": token,
                "beta": row.get("beta"),
                "create_time": row.get("create_time"),
                "create_date": iso_now(),
                "update_time": None,
                "update_date": None,
            }
        )

    async def list_tokens(self, request: Request) -> Response:
        rows = (
            self.store.conn()
            .execute("SELECT * FROM tokens WHERE kind='api' ORDER BY create_time")
            .fetchall()
        )
        return json_result(
            [{"token": r["token"], "tenant_id": r["tenant_id"], "beta": r["beta"]} for r in rows]
        )

    async def ping(self, request: Request) -> Response:
        return Response("pong", media_type="text/plain")

    async def list_models(self, request: Request) -> Response:
        models = []
        for factory in sorted(C.AUTHORIZED_FACTORIES):
            for name in sorted(C.EMBEDDING_CATALOG.get(factory, ())):
                models.append(
                    {
                        "model_provider": factory,
                        "provider_name": factory,
                        "model_name": name,
                        "model_type": "embedding",
                    }
                )
        models.append(
            {
                "model_provider": "ZHIPU-AI",
                "provider_name": "ZHIPU-AI",
                "model_name": "glm-4-flash",
                "model_type": "chat",
            }
        )
        return json_result(models)

    async def accept(self, request: Request) -> Response:
        await request.body()
        return json_result(True)
