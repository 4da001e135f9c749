"""Uploads are scoped to their owner: another owner gets 404, never 403."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path


def upload(client, content=PNG, name="cat.png", content_type="image/png", user_id="u1"):
    return client.post(
        "/api/v1/files/upload",
        {"file": SimpleUploadedFile(name, content, content_type=content_type), "user_id": user_id},
        format="multipart",
    )


def test_upload_list_get_delete(api, tmp_path):
    created = upload(api)
    assert created.status_code == 201, created.content
    file_id = created.json()["file_id"]
    assert created.json()["size"] == len(PNG)
    listed = api.get("/api/v1/files/", {"user_id": "u1"}).json()["results"]
    assert [item["file_id"] for item in listed] == [file_id]
    assert api.get(f"/api/v1/files/{file_id}").status_code == 200
    assert api.delete(f"/api/v1/files/{file_id}").status_code == 204
    assert api.get(f"/api/v1/files/{file_id}").status_code == 404
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_other_owner_gets_404_and_sees_nothing(api, other_api):
    file_id = upload(api).json()["file_id"]
    assert other_api.get(f"/api/v1/files/{file_id}").status_code == 404
    assert other_api.delete(f"/api/v1/files/{file_id}").status_code == 404
    assert other_api.get("/api/v1/files/").json()["results"] == []
    assert api.get(f"/api/v1/files/{file_id}").status_code == 200


def test_malformed_id_is_404(api):
    response = api.get("/api/v1/files/not-an-object-id")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_too_large_is_413(api, settings):
    settings.MAX_FILE_SIZE = 10
    response = upload(api)
    assert response.status_code == 413
    assert "MAX_FILE_SIZE" in response.json()["error"]["message"]


def test_wrong_type_and_disguised_content_are_415(api):
    assert (
        upload(
            api, content=b"MZ\x90\x00", name="x.exe", content_type="application/x-msdownload"
        ).status_code
        == 415
    )
    disguised = upload(api, content=b"not a png at all", name="fake.png")
    assert disguised.status_code == 415
    assert disguised.json()["error"]["code"] == "file_content_mismatch"


def test_missing_user_id_is_400_naming_the_field(api):
    response = api.post(
        "/api/v1/files/upload",
        {"file": SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "user_id" in response.json()["error"]["message"]


def test_webp_needs_its_format_name_not_just_riff(api):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32
    assert upload(api, content=wav, name="a.webp", content_type="image/webp").status_code == 415
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
    assert upload(api, content=webp, name="b.webp", content_type="image/webp").status_code == 201


def test_text_upload_accepts_utf8_cut_at_the_sniffed_boundary(api):
    text = ("é" * 300).encode()  # 600 bytes: the 512-byte head ends mid-character
    assert upload(api, content=text, name="t.txt", content_type="text/plain").status_code == 201
    latin1 = "é".encode("latin-1") * 50
    assert upload(api, content=latin1, name="l.txt", content_type="text/plain").status_code == 415
