"""A fake Telegram Bot API server (aiohttp on 127.0.0.1) that the real PTB Application talks to.

It speaks the wire format PTB uses (form fields whose non-string values are JSON, multipart for files),
answers the methods framewatch needs, records every call, validates outgoing HTML the way Telegram would
refuse it, and injects the faults Telegram produces: 429 with retry_after, 403 blocked, 400 chat not found,
400 migrate_to_chat_id, 5xx, dropped connections, hung requests and an optional global flood limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SEND_METHODS = frozenset({"sendMessage", "sendPhoto"})
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

# Telegram's HTML subset: tag → allowed attributes.
ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "span": frozenset({"class"}),
    "tg-spoiler": frozenset(),
    "a": frozenset({"href"}),
    "tg-emoji": frozenset({"emoji-id"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
}
_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:=\"[^\"<>]*\")?)*)\s*>")
_ATTR_RE = re.compile(r"([a-zA-Z-]+)(?:=\"([^\"]*)\")?")
_ENTITY_VALUES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_telegram_html(text: str) -> tuple[str | None, str]:
    """(error or None, the visible text after parsing). Stricter than Telegram where Telegram is vague."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY_RE.match(text, i)
            if not m:
                return f"unescaped '&' at offset {i}", ""
            name = m.group(1)
            if name.startswith("#x"):
                out.append(chr(int(name[2:], 16)))
            elif name.startswith("#"):
                out.append(chr(int(name[1:])))
            else:
                out.append(_ENTITY_VALUES[name])
            i = m.end()
        elif ch == "<":
            m = _TAG_RE.match(text, i)
            if not m:
                return f"unescaped '<' at offset {i}", ""
            closing, tag, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if tag not in ALLOWED_TAGS:
                return f"unsupported tag <{tag}> at offset {i}", ""
            if closing:
                if attrs.strip():
                    return f"attributes on a closing tag at offset {i}", ""
                if not stack or stack[-1] != tag:
                    return f"unbalanced </{tag}> at offset {i}", ""
                stack.pop()
            else:
                for name, value in _ATTR_RE.findall(attrs):
                    if name.lower() not in ALLOWED_TAGS[tag]:
                        return f"attribute {name!r} not allowed on <{tag}>", ""
                    if value and ("&" in value and _ENTITY_RE.sub("", value).count("&")):
                        return f"unescaped '&' in attribute of <{tag}>", ""
                stack.append(tag)
            i = m.end()
        elif ch == ">":
            return f"unescaped '>' at offset {i}", ""
        else:
            out.append(ch)
            i += 1
    if stack:
        return f"unclosed <{stack[-1]}>", ""
    return None, "".join(out)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0
    status: int = 200  # what we answered; 0 = connection dropped
    result: Any = None
    delivered: bool = False  # Telegram accepted it (even if the answer was then lost)


@dataclass
class Fault:
    """One scripted failure: kind is 429 | blocked | chat_not_found | migrate | 5xx | drop | drop_after |
    hang | bad_request. `chat_id` None matches any chat; `count` None means forever."""

    kind: str
    method: str | None = None
    chat_id: int | None = None
    count: int | None = 1
    retry_after: int = 1
    migrate_to: int | None = None
    hang_seconds: float = 3600.0


class FakeBotAPI:
    def __init__(
        self,
        token: str,
        *,
        rate_limit: float | None = None,
        latency: float = 0.0,
        require_html: bool = True,
        bot_id: int = 777000111,
        username: str = "framewatch_test_bot",
    ) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.latency = latency  # seconds each send takes before Telegram "accepts" it
        self.require_html = require_html
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "framewatch",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.rate_limited = 0
        self.webhook_url = ""
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._tokens = float(rate_limit or 0)
        self._tokens_at = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> None:
        """Listen on `port` (any free one by default; a fixed one lets a test bring the API up late)."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- what tests feed in ----------------------------------------------------------------------
    def user(self, user_id: int, language: str = "en") -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}", "language_code": language}

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
        return {"id": chat_id, "type": "supergroup", "title": f"group{chat_id}"}

    def push_update(self, update: dict[str, Any]) -> int:
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return int(update["update_id"])

    def push_text(self, user_id: int, text: str, *, chat_id: int | None = None) -> int:
        """A user message; a leading /command gets its bot_command entity exactly as Telegram marks it."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id if chat_id is not None else user_id),
            "from": self.user(user_id),
            "text": text,
        }
        m = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if m:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(m.group(0))}]
        return self.push_update({"message": message})

    def push_callback(
        self, user_id: int, data: str, *, message: dict[str, Any] | None = None, chat_id: int | None = None
    ) -> int:
        """A button press on `message` (a message the bot sent, as returned by sent())."""
        if message is None:
            message = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": self.chat(chat_id if chat_id is not None else user_id),
                "from": self.bot_user,
                "text": "…",
            }
        query = {
            "id": str(next(self._callback_ids)),
            "from": self.user(user_id),
            "message": message,
            "chat_instance": "fake-instance",
            "data": data,
        }
        return self.push_update({"callback_query": query})

    def add_fault(self, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(kind, **kwargs)
        self.faults.append(fault)
        return fault

    # -- what tests read back --------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages (and photos) Telegram accepted, oldest first."""
        return [
            c
            for c in self.calls
            if c.method in SEND_METHODS
            and c.delivered
            and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    def last_text(self, chat_id: int) -> str:
        sent = self.sent(chat_id)
        assert sent, f"nothing was sent to {chat_id}"
        return str(sent[-1].params.get("text") or sent[-1].params.get("caption") or "")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("condition not met at the fake Bot API")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_sent(self, chat_id: int, count: int = 1, timeout: float = 10.0) -> list[Call]:
        return await self.wait_for(lambda: len(self.sent(chat_id)) >= count and self.sent(chat_id), timeout)

    def _notify(self) -> None:
        async def _go() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(_go())

    # -- the server --------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.filename:  # type: ignore[union-attr]
                    files[part.name or ""] = await part.read()  # type: ignore[union-attr]
                else:
                    params[part.name or ""] = (await part.read()).decode()  # type: ignore[union-attr]
        elif request.content_type == "application/json":
            params = dict(await request.json())
        else:
            params = dict((await request.post()).items())  # type: ignore[arg-type]
        params.update(request.query)
        for key, value in list(params.items()):
            if isinstance(value, str) and value[:1] in "[{" and key not in ("text", "caption"):
                with contextlib.suppress(json.JSONDecodeError):
                    params[key] = json.loads(value)
        return params, files

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        chat = params.get("chat_id")
        for fault in self.faults:
            if fault.count is not None and fault.count <= 0:
                continue
            if fault.method is not None and fault.method != method:
                continue
            if fault.chat_id is not None and str(fault.chat_id) != str(chat):
                continue
            if fault.count is not None:
                fault.count -= 1
            return fault
        return None

    def _take_rate_token(self) -> bool:
        if not self.rate_limit:
            return True
        now = time.monotonic()
        self._tokens = min(self.rate_limit, self._tokens + (now - self._tokens_at) * self.rate_limit)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        params, files = await self._params(request)
        call = Call(method, params, files, at=time.monotonic())
        self.calls.append(call)
        self._notify()
        try:
            response = await self._respond(call, request)
        finally:
            self._notify()
        if response is None:  # the transport is already aborted; this answer goes nowhere
            call.status = 0
            return web.Response(status=500)
        call.status = response.status
        return response

    async def _respond(self, call: Call, request: web.Request) -> web.Response | None:
        fault = self._take_fault(call.method, call.params)
        if fault is not None:
            answer = await self._fault_response(fault, call, request)
            if answer is not False:
                return answer  # type: ignore[return-value]
        if call.method in SEND_METHODS and self.latency:
            await asyncio.sleep(self.latency)
        if call.method in SEND_METHODS and not self._take_rate_token():
            self.rate_limited += 1
            return self._error(429, "Too Many Requests: retry after 1", retry_after=1)
        handler = getattr(self, f"_m_{call.method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        result = handler(call) if not asyncio.iscoroutinefunction(handler) else await handler(call)
        if isinstance(result, web.Response):
            return result
        call.result, call.delivered = result, True
        return web.json_response({"ok": True, "result": result})

    async def _fault_response(self, fault: Fault, call: Call, request: web.Request) -> Any:
        kind = fault.kind
        if kind == "429":
            self.rate_limited += 1
            text = f"Too Many Requests: retry after {fault.retry_after}"
            return self._error(429, text, retry_after=fault.retry_after)
        if kind == "blocked":
            return self._error(403, "Forbidden: bot was blocked by the user")
        if kind == "chat_not_found":
            return self._error(400, "Bad Request: chat not found")
        if kind == "bad_request":
            return self._error(400, "Bad Request: something is wrong")
        if kind == "migrate":
            return self._error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=fault.migrate_to,
            )
        if kind == "5xx":
            return self._error(500, "Internal Server Error")
        if kind == "drop":
            self._drop(request)
            return None
        if kind == "drop_after":  # Telegram accepted the message but the answer never arrived
            result = getattr(self, f"_m_{call.method}")(call)
            if not isinstance(result, web.Response):
                call.result, call.delivered = result, True
            self._drop(request)
            return None
        if kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hang_seconds)
            self._drop(request)
            return None
        raise ValueError(f"unknown fault {kind!r}")

    @staticmethod
    def _drop(request: web.Request) -> None:
        if request.transport is not None:
            request.transport.abort()

    # -- validation ------------------------------------------------------------------------------
    def _validate_text(self, call: Call, text: str, limit: int) -> web.Response | None:
        if not text:
            return self._error(400, "Bad Request: message text is empty")
        visible = text
        if call.params.get("parse_mode") == "HTML":
            error, visible = check_telegram_html(text)
            if error:
                self.violations.append(f"{call.method}: {error}: {text[:200]!r}")
                return self._error(400, f"Bad Request: can't parse entities: {error}")
        elif self.require_html:
            self.violations.append(f"{call.method}: sent without parse_mode=HTML: {text[:200]!r}")
        if utf16_len(visible) > limit:
            self.violations.append(f"{call.method}: {utf16_len(visible)} > {limit} characters")
            return self._error(400, "Bad Request: message is too long")
        return self._validate_markup(call)

    def _validate_markup(self, call: Call) -> web.Response | None:
        markup = call.params.get("reply_markup")
        if not markup:
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                    self.violations.append(f"{call.method}: callback_data of {len(data.encode())} bytes")
                    return self._error(400, "Bad Request: BUTTON_DATA_INVALID")
                if not button.get("text"):
                    self.violations.append(f"{call.method}: button without text")
                    return self._error(400, "Bad Request: text buttons are unallowed")
        return None

    def _message(self, call: Call, **extra: Any) -> dict[str, Any]:
        chat_id = int(call.params["chat_id"])
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": self.bot_user,
            **extra,
        }
        if call.params.get("reply_markup"):
            message["reply_markup"] = call.params["reply_markup"]
        return message

    # -- methods -----------------------------------------------------------------------------------
    def _m_getMe(self, call: Call) -> Any:
        return self.bot_user

    async def _m_getUpdates(self, call: Call) -> Any:
        offset = int(call.params.get("offset") or 0)
        timeout = float(call.params.get("timeout") or 0)
        limit = int(call.params.get("limit") or 100)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self._updates[:limit]

    def _m_sendMessage(self, call: Call) -> Any:
        text = str(call.params.get("text", ""))
        problem = self._validate_text(call, text, TEXT_LIMIT)
        if problem is not None:
            return problem
        return self._message(call, text=text)

    def _m_sendPhoto(self, call: Call) -> Any:
        photo = call.files.get("photo")
        if not photo or not photo.startswith(b"\x89PNG\r\n\x1a\n"):
            self.violations.append("sendPhoto: photo is not a PNG upload")
            return self._error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = str(call.params.get("caption", ""))
        if caption:
            problem = self._validate_text(call, caption, CAPTION_LIMIT)
            if problem is not None:
                return problem
        size = {"file_id": f"photo{len(self.calls)}", "file_unique_id": f"u{len(self.calls)}"}
        return self._message(call, photo=[{**size, "width": 800, "height": 400, "file_size": len(photo)}])

    def _m_editMessageText(self, call: Call) -> Any:
        text = str(call.params.get("text", ""))
        problem = self._validate_text(call, text, TEXT_LIMIT)
        if problem is not None:
            return problem
        return self._message(call, text=text, edit_date=int(time.time()))

    def _m_editMessageReplyMarkup(self, call: Call) -> Any:
        problem = self._validate_markup(call)
        if problem is not None:
            return problem
        return self._message(call, text="…", edit_date=int(time.time()))

    def _m_answerCallbackQuery(self, call: Call) -> Any:
        text = str(call.params.get("text") or "")
        if len(text) > 200:
            self.violations.append(f"answerCallbackQuery: text of {len(text)} characters")
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    def _m_setMyCommands(self, call: Call) -> Any:
        for command in call.params.get("commands", []):
            name = command.get("command", "")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name) or not 1 <= len(command.get("description", "")) <= 256:
                self.violations.append(f"setMyCommands: invalid command {command!r}")
                return self._error(400, "Bad Request: BOT_COMMAND_INVALID")
        return True

    def _m_deleteMyCommands(self, call: Call) -> Any:
        return True

    def _m_deleteWebhook(self, call: Call) -> Any:
        self.webhook_url = ""
        return True

    def _m_setWebhook(self, call: Call) -> Any:
        self.webhook_url = str(call.params.get("url", ""))
        return True

    def _m_getWebhookInfo(self, call: Call) -> Any:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}

    def _m_close(self, call: Call) -> Any:
        return True
