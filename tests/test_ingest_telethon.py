"""Telethon Message → RawPost, tested with Telethon's own objects (skipped when Telethon is absent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ingest.telethon import message_to_post, telethon_available
from ingest.types import RawPost

types = pytest.importorskip("telethon.tl.types", reason="telethon is optional and not installed")


def _message(**fields: object) -> object:
    fields.setdefault("peer_id", types.PeerChannel(channel_id=1001))
    fields.setdefault("date", datetime(2024, 3, 6, 9, 47, tzinfo=UTC))
    return types.Message(**fields)  # type: ignore[arg-type]


def test_text_message_exact_fields() -> None:
    message = _message(id=4411, message="Первая строка\nвторая\u200b строка", views=98_100)
    assert message_to_post(message, channel="svodka_dnya") == RawPost(
        external_id="4411",
        url="https://t.me/svodka_dnya/4411",
        title="Первая строка",
        text="Первая строка\nвторая строка",
        published_at=datetime(2024, 3, 6, 9, 47, tzinfo=UTC),
        language="ru",
        views=98_100,
    )


def test_forwarded_edited_photo_message() -> None:
    fwd = types.MessageFwdHeader(date=datetime(2024, 3, 1, tzinfo=UTC), from_name="Скрытый автор")
    photo = types.MessageMediaPhoto(photo=types.PhotoEmpty(id=1))
    message = _message(
        id=12,
        message="Фото з місця подій",
        fwd_from=fwd,
        media=photo,
        edit_date=datetime(2024, 3, 6, 10, tzinfo=UTC),
        date=datetime(2024, 3, 6, 12, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    post = message_to_post(message, channel="ukr_monitor")
    assert post is not None
    assert (post.forwarded_from, post.media, post.edited, post.language) == (
        "Скрытый автор",
        ("photo",),
        True,
        "uk",
    )
    assert post.published_at == datetime(2024, 3, 6, 10, 0, tzinfo=UTC)


def test_forward_from_a_channel_uses_resolved_names() -> None:
    fwd = types.MessageFwdHeader(date=datetime(2024, 3, 1, tzinfo=UTC), from_id=types.PeerChannel(channel_id=77))
    message = _message(id=13, message="x", fwd_from=fwd)
    assert message_to_post(message, channel="c", forwarded_names={77: "Origin"}).forwarded_from == "Origin"  # type: ignore[union-attr]
    assert message_to_post(message, channel="c").forwarded_from == "id77"  # type: ignore[union-attr]


def test_media_kinds_and_link_preview() -> None:
    video = types.Document(
        id=1,
        access_hash=2,
        file_reference=b"",
        date=None,
        mime_type="video/mp4",
        size=10,
        dc_id=2,
        attributes=[types.DocumentAttributeVideo(duration=4.0, w=640, h=360)],
    )
    pdf = types.Document(
        id=3,
        access_hash=4,
        file_reference=b"",
        date=None,
        mime_type="application/pdf",
        size=10,
        dc_id=2,
        attributes=[types.DocumentAttributeFilename(file_name="a.pdf")],
    )
    page = types.WebPage(id=5, url="https://e.org/x", display_url="e.org/x", hash=0, title="Заголовок превью")
    cases = {
        "video": types.MessageMediaDocument(document=video),
        "document": types.MessageMediaDocument(document=pdf),
        "location": types.MessageMediaGeo(geo=types.GeoPointEmpty()),
    }
    for kind, media in cases.items():
        post = message_to_post(_message(id=20, message="", media=media), channel="c")
        assert post is not None and post.media == (kind,) and post.text == ""
    post = message_to_post(
        _message(id=21, message="see link", media=types.MessageMediaWebPage(webpage=page)), channel="c"
    )
    assert post is not None and post.link_title == "Заголовок превью" and post.media == ()


def test_service_and_empty_messages_are_skipped() -> None:
    service = types.MessageService(
        id=30,
        peer_id=types.PeerChannel(channel_id=1),
        date=datetime(2024, 1, 1, tzinfo=UTC),
        action=types.MessageActionChannelCreate(title="t"),
    )
    assert message_to_post(service, channel="c") is None
    assert message_to_post(_message(id=31, message=""), channel="c") is None


def test_source_language_wins() -> None:
    post = message_to_post(_message(id=40, message="Hello"), channel="c", language="uk")
    assert post is not None and post.language == "uk"


def test_availability_probe() -> None:
    assert telethon_available()
