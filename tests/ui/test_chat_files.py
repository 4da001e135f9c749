"""The chat page's files (#21), in headless Chromium against a real daphne, Celery
worker and fake vendors: an attached image is a thumbnail in the transcript (served
with the login session, also after a reload), a document's source link opens for the
signed-in page, and "Your files" lists the user's files with their status and deletes
one with its data."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from files.models import File
from tests.ui.test_chat_api import PNG_1X1
from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in, record_sent_frames
from tests.ui.test_chat_conversations import in_thread, use_openai
from tests.ui.test_chat_documents import ask_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOADED = "img => img.complete && img.naturalWidth > 0"


@pytest.fixture
def chat_user(vendor_settings):
    # Before the browser starts: see the browser fixture.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return get_user_model().objects.create_user("dana", password=PASSWORD)


def file_rows(page) -> list[str]:
    return page.locator("#file-list li a").all_text_contents()


def test_thumbnails_source_links_and_the_files_panel(
    live_daphne, fakes, chat_user, browser, tmp_path
):
    page = browser.page
    sent = record_sent_frames(page)
    log_in(page, live_daphne.url)
    use_openai(page)

    png = tmp_path / "dot.png"
    png.write_bytes(PNG_1X1)
    page.get_by_label("Attach files", exact=False).set_input_files(str(png))
    page.wait_for_selector("#attachments li[data-state=ready]")
    ask_and_wait(page, "What is in this picture?")
    image_id = sent[-1]["attachments"][0]
    thumbnail = page.locator("#transcript .turn").last.locator(".thumbnails img")
    assert thumbnail.get_attribute("src") == f"/chat/api/files/{image_id}/content"
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.thumbnails img'))")

    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe cat is called Miso.\n")
    page.get_by_label("Attach files", exact=False).set_input_files(str(notes))
    ask_and_wait(page, "What is the cat called?")
    document_id = sent[-1]["documents"][0]
    link = page.locator("#transcript .turn").last.locator(".citation a").first
    href = link.get_attribute("href")
    assert href.startswith(f"/chat/api/files/{document_id}/content")
    opened = page.evaluate("url => fetch(url).then(r => r.status)", href)
    assert opened == 200  # the signed-in page's own route, not the API key's

    page.reload()
    page.wait_for_selector("#connection[data-state=open]")
    page.wait_for_function(f"() => ({LOADED})(document.querySelector('.thumbnails img'))")

    page.locator("#files-panel summary").click()
    page.wait_for_function("() => document.querySelectorAll('#file-list li').length === 2")
    assert file_rows(page) == ["notes.md", "dot.png"]
    statuses = page.locator("#file-list .file-status").all_text_contents()
    assert statuses[0].strip().startswith("ready") and statuses[1].strip().startswith("image")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete notes.md").click()
    page.wait_for_function("() => document.querySelectorAll('#file-list li').length === 1")
    assert file_rows(page) == ["dot.png"]
    assert not in_thread(lambda: File.objects.filter(pk=document_id).exists())
